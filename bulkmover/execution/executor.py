"""Run planned shards as import operations: within quota, adaptively, crash-safely.

Three tasks share one TaskGroup:

- the submitter takes pending shards in order, waits for a slot under the adaptive concurrency
  cap (``AdaptiveLimits.gate``) and for the LRO-start rate limiter (the client's
  ``before_request`` hook), commits ``submitting``, POSTs the import and commits the operation
  name the moment it is returned;
- the poller watches every operation in flight: one ``operations.get`` each while few run, one
  ``operations.list(filter=done=false)`` page per 1000 when many do (an operation missing from that
  list has ended and gets one final ``get``), at an interval that grows with the operations' age;
- the ticker feeds the adaptive limits (recovery, the throughput probe) and the board.

On a 429 the limits back off; a whole-operation error that is transient puts the shard back in the
queue with exponential backoff; other errors fail the shard. Stopping (Ctrl-C) cancels the
submitter between commits; operations already started keep running on the server and are
re-attached by the next ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from bulkmover.board.model import InFlight, Snapshot, Totals
from bulkmover.errors import ApiError, BulkmoverError
from bulkmover.execution.limits import AdaptiveLimits, LimitChange
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.failures import OutcomeUnknownError
from bulkmover.healthcare.operations import ErrorClass, Operation, PollSchedule
from bulkmover.healthcare.resources import DatasetPath, StorePath
from bulkmover.healthcare.stats import Family, RequestEvent
from bulkmover.state.runs import RunLedger, ShardRun
from bulkmover.state.store import ShardState

log = structlog.get_logger("bulkmover.executor")

#: With more operations in flight than this, poll with operations.list instead of one get each.
LIST_POLL_THRESHOLD = 4
LIST_PAGE_SIZE = 1000
#: Operations that left the done=false list get their final ``get``, this many at a time.
FINAL_GETS_IN_PARALLEL = 16


@dataclass(frozen=True)
class ExecutorSettings:
    store: StorePath
    blob_storage_class: str | None = None
    max_attempts: int = 8  # whole-operation transient failures before a shard fails for good
    retry_base: float = 5.0  # seconds; doubled per attempt, full jitter
    retry_cap: float = 600.0
    poll: PollSchedule = PollSchedule(minimum=0.2, maximum=30.0, fraction=0.05)
    # Polling by list: one call covers every operation in flight, paced by the age of the
    # oldest (the likeliest to end next), so it can afford a smaller fraction: an operation is
    # seen ended about fraction/2 of its age late, slot time a makespan loses (0.5% with 0.01).
    list_poll: PollSchedule = PollSchedule(minimum=0.1, maximum=30.0, fraction=0.01)
    tick: float = 0.5


@dataclass
class Tracked:
    """An operation in flight, as the executor last saw it."""

    shard: ShardRun
    operation: str
    started: float  # monotonic
    success: int = 0
    failure: int = 0
    next_poll: float = 0.0
    committed: tuple[int, int] = (0, 0)  # (success, failure) last written to the state file
    holds_slot: bool = True  # False once the server has ended it (its final get may be pending)
    fetching: bool = False  # its final get is under way


@dataclass
class RunResult:
    totals: Totals
    interrupted: bool
    elapsed: float
    api_calls: dict[str, int] = field(default_factory=dict)
    throttled: int = 0

    @property
    def ok(self) -> bool:
        t = self.totals
        return not self.interrupted and t.failed == 0 and t.failure == 0 and t.done == t.shards


class Executor:
    def __init__(
        self,
        ledger: RunLedger,
        client: HealthcareClient,
        limits: AdaptiveLimits,
        settings: ExecutorSettings,
        *,
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.limits = limits
        self.settings = settings
        self.on_snapshot = on_snapshot
        self.in_flight: dict[int, Tracked] = {}
        self.errors: deque[str] = deque(maxlen=20)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._started = time.monotonic()
        self._finished_processed = 0  # success+failure of operations ended in this run
        self._samples: deque[tuple[float, int]] = deque(maxlen=120)
        self._submitted = 0
        self._posts = 0  # POSTs in progress
        self._final_gets = asyncio.Semaphore(FINAL_GETS_IN_PARALLEL)
        limits.listeners.append(self._on_limit_change)

    @property
    def dataset(self) -> DatasetPath:
        return self.settings.store.dataset

    # -- public ------------------------------------------------------------------------------

    def on_response(self, event: RequestEvent) -> None:
        """Client hook: every 429 feeds the adaptive limits.

        A refused start says either "too many operations running" (cut the concurrency cap,
        from what runs now) or "quota exceeded" (a per-minute quota: cut that family's rate).
        """
        if not event.throttled:
            if event.status is not None:
                self.limits.on_accepted(event.family.value)
            return
        reason = f"429 on {event.method}"
        message = (event.message or "").lower()
        if event.family == Family.LRO_START and "operations" in message and "quota" not in message:
            self.limits.on_throttled(
                event.family.value, reason, concurrency=True, in_flight=self._running()
            )
        else:
            self.limits.on_throttled(event.family.value, reason)

    def stop(self) -> None:
        """Stop submitting and return once what is in progress is recorded.

        Waiting for a slot ends at once; POSTs already sent are let finish, so that an operation
        they start has its name committed.
        """
        self._stopping.set()
        self._wake.set()

    async def run(self) -> RunResult:
        for shard in self.ledger.recover_interrupted():
            assert shard.operation is not None
            self.limits.gate.occupy()
            self.in_flight[shard.shard_id] = Tracked(
                shard,
                shard.operation,
                time.monotonic(),
                shard.success,
                shard.failure,
                committed=(shard.success, shard.failure),
            )
            self.ledger.event(shard.shard_id, "reattached", shard.operation)
        if self.in_flight:
            log.info("reattached", operations=len(self.in_flight))
        try:
            async with asyncio.TaskGroup() as tg:
                submitter = tg.create_task(self._submitter())
                poller = tg.create_task(self._poller())
                ticker = tg.create_task(self._ticker())
                await asyncio.wait([submitter])  # ends when all is done, or on stop()
                poller.cancel()
                ticker.cancel()
        except BaseExceptionGroup as group:
            # A fatal API error (403, 404...) in one task stops them all: report it, not the group.
            raise _first_user_error(group) from None
        finally:
            if self.in_flight:
                self._commit_progress()
            self._publish(finished=True)
        return RunResult(
            totals=self.snapshot().totals,
            interrupted=self._stopping.is_set(),
            elapsed=time.monotonic() - self._started,
            api_calls={f.value: s.requests for f, s in self.client.stats.families.items()},
            throttled=self.limits.throttled,
        )

    # -- submitting --------------------------------------------------------------------------

    async def _submitter(self) -> None:
        """Take pending shards in order; each POST runs as its own task under a gate slot."""
        async with asyncio.TaskGroup() as posts:
            while not self._stopping.is_set():
                batch = self.ledger.next_pending(time.time())
                if not batch:
                    wakeup = self.ledger.next_wakeup()
                    if not self.in_flight and wakeup is None and not self._posts:
                        return  # nothing pending, nothing running: the run is over
                    delay = 1.0 if wakeup is None else max(0.05, min(5.0, wakeup - time.time()))
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
                for shard in batch:
                    if not await self._acquire_slot():
                        return
                    self.ledger.claim(shard.shard_id)
                    self._posts += 1
                    posts.create_task(self._submit(shard))

    async def _acquire_slot(self) -> bool:
        """A slot under the concurrency cap, or False as soon as a stop is asked for."""
        if self._stopping.is_set():
            return False
        acquire = asyncio.ensure_future(self.limits.gate.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if acquire.done() and not acquire.cancelled() and not self._stopping.is_set():
            return True
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        if acquire.done() and not acquire.cancelled():
            self.limits.gate.release()  # granted in the same tick as the stop
        return False

    async def _submit(self, shard: ShardRun) -> None:
        """POST one claimed shard's import; the gate slot is released when its operation ends."""
        try:
            await self._post(shard)
        finally:
            self._posts -= 1
            self._wake.set()

    async def _post(self, shard: ShardRun) -> None:
        try:
            ref = await self.client.import_dicom(
                self.settings.store, shard.uri, self.settings.blob_storage_class
            )
        except OutcomeUnknownError as exc:
            # The POST may have started an operation; importing again is harmless (instances
            # already stored are skipped), so requeue at once rather than guess.
            self._release_slot()
            self.ledger.requeue(shard.shard_id, time.time(), f"start outcome unknown: {exc}")
            self._note_error(shard.shard_id, str(exc))
            return
        except ApiError as exc:
            self._release_slot()
            if exc.retriable:
                retry_at = time.time() + self._backoff(shard.attempts + 1)
                self.ledger.requeue(shard.shard_id, retry_at, str(exc))
                self._note_error(shard.shard_id, str(exc))
                return
            if exc.status in (401, 403, 404) or exc.status is None:
                # Every other shard would fail the same way: stop the run, state consistent.
                self.ledger.requeue(shard.shard_id, 0.0, str(exc))
                raise
            self.ledger.mark_failed(shard.shard_id, str(exc))
            self._note_error(shard.shard_id, str(exc))
            return
        except BaseException:
            # Cancelled mid-POST: the shard stays ``submitting`` and is resubmitted on resume.
            self._release_slot()
            raise
        self.ledger.mark_running(shard.shard_id, ref.name)
        self._submitted += 1
        self.in_flight[shard.shard_id] = Tracked(shard, ref.name, time.monotonic())
        self._wake.set()

    # -- polling -----------------------------------------------------------------------------

    async def _poller(self) -> None:
        """Few in flight: one get per operation when its own schedule says. Many: one list
        (a page per 1000) at the pace the oldest operation's age calls for; a young operation
        does not make the whole list poll faster."""
        next_list = 0.0
        async with asyncio.TaskGroup() as finals:
            while True:
                now = time.monotonic()
                watched = [t for t in self.in_flight.values() if not t.fetching]
                if len(self.in_flight) > LIST_POLL_THRESHOLD:
                    if watched and now >= next_list:
                        await self._poll_by_list(watched, finals)
                        now = time.monotonic()
                        oldest = max(
                            (now - t.started for t in self.in_flight.values() if t.holds_slot),
                            default=0.0,
                        )
                        next_list = now + self.settings.list_poll.delay(oldest)
                    next_due = next_list
                else:
                    for tracked in watched:
                        if tracked.next_poll <= now:
                            await self._poll_one(tracked)
                    next_due = min(
                        (t.next_poll for t in self.in_flight.values() if not t.fetching),
                        default=now + 0.2,
                    )
                await asyncio.sleep(max(0.02, min(next_due - time.monotonic(), 1.0)))

    async def _poll_one(self, tracked: Tracked) -> None:
        try:
            op = await self.client.get_operation(tracked.operation)
        except ApiError as exc:
            self._schedule(tracked)
            self._note_error(tracked.shard.shard_id, f"poll: {exc}")
            if exc.status == 404:
                self._finish(tracked, None, f"operation {tracked.operation} not found")
            return
        self._observe(tracked, op)

    async def _poll_by_list(self, watched: list[Tracked], finals: asyncio.TaskGroup) -> None:
        """One list call per page for everything in flight; ended operations get one get each,
        in tasks of their own, so that the next list poll does not wait for them."""
        by_name = {t.operation: t for t in watched}
        seen: set[str] = set()
        try:
            async for page in self.client.iter_operation_pages(
                self.dataset, "done=false", LIST_PAGE_SIZE
            ):
                for op in page.operations:
                    tracked = by_name.get(op.name)
                    if tracked is not None:
                        seen.add(op.name)
                        self._observe(tracked, op)
        except ApiError as exc:
            self._note_error(None, f"poll: {exc}")
            for tracked in by_name.values():
                self._schedule(tracked)
            return
        ended = [
            t
            for name, t in by_name.items()
            if name not in seen and t.shard.shard_id in self.in_flight
        ]
        for tracked in ended:
            # Not running on the server any more: its slot is free for the next start now, while
            # the final get (counters, error) is on its way.
            self._free_slot(tracked)
            tracked.fetching = True
            finals.create_task(self._fetch_final(tracked))
        self._commit_progress()

    async def _fetch_final(self, tracked: Tracked) -> None:
        """The final ``get`` of an operation that left the list, a few at a time: when hundreds
        end together, getting them one after another, before the next list poll, kept slots
        idle for seconds. A get that fails leaves it to be found ended by the next list."""
        try:
            async with self._final_gets:
                if tracked.shard.shard_id in self.in_flight:
                    await self._poll_one(tracked)
        finally:
            tracked.fetching = False

    def _observe(self, tracked: Tracked, op: Operation) -> None:
        tracked.success, tracked.failure = op.counter.success, op.counter.failure
        if op.done:
            self._finish(tracked, op, None)
        else:
            self._schedule(tracked)

    def _schedule(self, tracked: Tracked) -> None:
        age = time.monotonic() - tracked.started
        tracked.next_poll = time.monotonic() + self.settings.poll.delay(age)

    def _commit_progress(self) -> None:
        """Write the counters that moved since last time (one commit).

        Only those: rewriting every operation in flight after every list poll cost a third of
        the executor's CPU with 400 operations in flight, and stalled the event loop."""
        moved = [t for t in self.in_flight.values() if (t.success, t.failure) != t.committed]
        if not moved:
            return
        self.ledger.record_progress((t.operation, t.success, t.failure) for t in moved)
        for t in moved:
            t.committed = (t.success, t.failure)

    def _finish(self, tracked: Tracked, op: Operation | None, lost: str | None) -> None:
        shard = tracked.shard
        self.in_flight.pop(shard.shard_id, None)
        self._free_slot(tracked)
        success, failure = tracked.success, tracked.failure
        self._finished_processed += success + failure
        if op is not None and op.succeeded:
            drift = success + failure != shard.expected
            self.ledger.mark_finished(
                shard.shard_id,
                tracked.operation,
                success=success,
                failure=failure,
                error=(
                    f"drift: expected {shard.expected} objects, operation reported "
                    f"{success + failure}"
                    if drift
                    else None
                ),
                state=ShardState.DONE,
                drift=drift,
            )
            if failure:
                self._note_error(shard.shard_id, f"{failure} file(s) failed in {tracked.operation}")
            return
        error = lost or (str(op.error) if op is not None and op.error else "unknown error")
        kind = op.error_class if op is not None else ErrorClass.TRANSIENT
        attempts = shard.attempts + 1
        self._note_error(shard.shard_id, error)
        retry = (
            kind in (ErrorClass.TRANSIENT, ErrorClass.CANCELLED)
            and attempts < self.settings.max_attempts
        )
        self.ledger.mark_finished(
            shard.shard_id,
            tracked.operation,
            success=success,
            failure=failure,
            error=error,
            state=ShardState.PENDING if retry else ShardState.FAILED,
            retry_at=time.time() + self._backoff(attempts) if retry else None,
        )
        self._wake.set()

    # -- limits and board --------------------------------------------------------------------

    async def _ticker(self) -> None:
        last_board = 0.0
        while True:
            await asyncio.sleep(self.settings.tick)
            self.limits.tick()
            processed = self._processed()
            self._samples.append((time.monotonic(), processed))
            self.limits.observe_throughput(processed, self._running())
            if time.monotonic() - last_board >= self.settings.tick:
                self._publish()
                last_board = time.monotonic()

    def _processed(self) -> int:
        return self._finished_processed + sum(
            t.success + t.failure for t in self.in_flight.values()
        )

    def _throughput(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def snapshot(self, finished: bool = False) -> Snapshot:
        live = {t.shard.shard_id: t for t in self.in_flight.values()}
        now = time.monotonic()
        return Snapshot(
            totals=self.ledger.totals(),
            in_flight=[
                InFlight(
                    t.shard.shard_id,
                    t.shard.uri,
                    t.operation,
                    now - t.started,
                    t.success,
                    t.failure,
                    t.shard.expected,
                )
                for t in live.values()
            ],
            elapsed_seconds=now - self._started,
            throughput=self._throughput(),
            concurrency=self.limits.concurrency,
            concurrency_max=self.limits.settings.max_concurrency,
            rate_per_minute=_finite(self.limits.rate(Family.LRO_START.value)),
            rate_max=_finite(self.limits.settings.max_rates.get(Family.LRO_START.value)),
            limit_changes=[str(c) for c in self.limits.changes],
            throttled=self.limits.throttled,
            last_errors=list(self.errors),
            finished=finished,
        )

    def _publish(self, finished: bool = False) -> None:
        if self.on_snapshot is not None:
            self.on_snapshot(self.snapshot(finished))

    def _on_limit_change(self, change: LimitChange) -> None:
        self.ledger.event(None, "limit", str(change))
        log.info("limit_changed", change=str(change))

    # -- helpers -----------------------------------------------------------------------------

    def _running(self) -> int:
        """Operations running on the server, as far as we know (holding a slot)."""
        return sum(1 for t in self.in_flight.values() if t.holds_slot)

    def _free_slot(self, tracked: Tracked) -> None:
        if tracked.holds_slot:
            tracked.holds_slot = False
            self._release_slot()

    def _release_slot(self) -> None:
        if self.limits.gate.in_use > 0:
            self.limits.gate.release()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.retry_cap, self.settings.retry_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _note_error(self, shard_id: int | None, message: str) -> None:
        prefix = f"shard {shard_id}: " if shard_id is not None else ""
        self.errors.append(prefix + message)
        log.warning("error", shard=shard_id, message=message)


def _first_user_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first BulkmoverError in ``group`` (depth first), else the group itself."""
    for exc in group.exceptions:
        if isinstance(exc, BulkmoverError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_user_error(exc)
            if found is not exc:
                return found
    return group


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


__all__ = ["Executor", "ExecutorSettings", "RunResult", "BulkmoverError"]
