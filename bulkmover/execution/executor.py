"""Run planned shards as long-running operations: within quota, adaptively, crash-safely.

What an operation *is* (import, export, ...) comes from an ``OperationKind``; the executor only
schedules, gates, polls, records and requeues, and every decision it takes is a pure function in
``decisions``. Four tasks share one TaskGroup:

- the submitter takes pending shards in order, waits for a slot under the adaptive concurrency
  cap (``AdaptiveLimits.gate``) and for the start's rate token and lane (``pacing``), commits the
  claim, starts the operation and commits its name the moment it is returned;
- the poller watches every operation in flight: one ``operations.get`` each while few run, one
  ``operations.list(filter=done=false)`` page per 1000 when many do (an operation missing from that
  list has ended and gets one final ``get``), at an interval that grows with the operations' age;
- the resolver finds the operation of a start whose answer was lost before sending it again;
- the ticker feeds the adaptive limits (recovery, the throughput probe) and the board.

Stopping (Ctrl-C) cancels the submitter between commits; operations already started keep running
on the server and are re-attached by the next ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from bulkmover.board.model import InFlight, Snapshot
from bulkmover.errors import ApiError, first_user_error
from bulkmover.execution.decisions import (
    LIST_POLL_THRESHOLD,
    PollAction,
    StartAction,
    Throttle,
    after_operation,
    after_poll_error,
    after_start_error,
    expected_seconds,
    get_poll_delay,
    left_the_list,
    list_filter_honoured,
    poll_by_list,
    requeue_delay,
    rpc_code,
    throttle_target,
)
from bulkmover.execution.kinds import Judgement, OperationKind, Outcome
from bulkmover.execution.limits import AdaptiveLimits, LimitChange
from bulkmover.execution.pacing import StartPacer
from bulkmover.execution.patience import API_EVENTS, Patience, attempt_ok, attempt_what
from bulkmover.execution.resolver import ResolverSettings, StartResolver
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.failures import OutcomeUnknownError
from bulkmover.healthcare.operations import Operation, PollSchedule
from bulkmover.healthcare.stats import Family, RequestEvent
from bulkmover.logs import redact_text
from bulkmover.state.coverage import Coverage, read_coverage
from bulkmover.state.files import OutcomeTotals
from bulkmover.state.runs import RunLedger, RunTotals, ShardRun

log = structlog.get_logger("bulkmover.executor")

LIST_PAGE_SIZE = 1000
#: Operations that left the done=false list get their final ``get``, this many at a time.
FINAL_GETS_IN_PARALLEL = 16
FILE_TOTALS_EVERY = 5.0  # seconds between counts of the per-file outcomes for the board


@dataclass(frozen=True)
class ExecutorSettings:
    max_attempts: int = 8  # whole-operation transient failures before a shard fails for good
    retry_base: float = 5.0  # seconds; doubled per attempt, full jitter
    retry_cap: float = 600.0
    poll: PollSchedule = PollSchedule(minimum=0.2, maximum=30.0, fraction=0.05)
    # Polling by list: one call covers every operation in flight, paced by the age of the
    # oldest (the likeliest to end next), so it can afford a smaller fraction: an operation is
    # seen ended about fraction/2 of its age late, slot time a makespan loses (0.5% with 0.01).
    list_poll: PollSchedule = PollSchedule(minimum=0.1, maximum=30.0, fraction=0.01)
    tick: float = 0.5
    resolver: ResolverSettings = ResolverSettings()
    give_up_after: float = 900.0  # seconds with no API call succeeding before the run stops


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
    fresh: bool = False  # started by this run: its whole duration is known (its pace counts)


@dataclass
class RunResult:
    totals: RunTotals
    interrupted: bool
    elapsed: float
    api_calls: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    files: OutcomeTotals = field(default_factory=OutcomeTotals)
    coverage: Coverage = field(default_factory=Coverage)

    @property
    def ok(self) -> bool:
        """Every shard done, every file of the ledger imported, and every file the source
        matched in the ledger (none left unplanned, none deleted since planning)."""
        t, f = self.totals, self.files
        if self.interrupted or t.failed or t.done != t.shards or not self.coverage.complete:
            return False
        if f.files == 0:  # shards planned without a ledger: only the counters can tell
            return t.failure == 0
        return f.failed == 0 and f.unknown == 0 and f.pending == 0


class Executor:
    def __init__(
        self,
        ledger: RunLedger,
        client: HealthcareClient,
        limits: AdaptiveLimits,
        kind: OperationKind,
        settings: ExecutorSettings = ExecutorSettings(),
        *,
        pacer: StartPacer | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        rng: random.Random | None = None,
        hold: Callable[[], bool] | None = None,
        on_finished: Callable[[], None] | None = None,
        more_patience: Sequence[tuple[str, Patience]] = (),
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.limits = limits
        self.kind = kind
        self.settings = settings
        # Without a pacer wired into the client, starts still go one at a time, holding the
        # lane across the client's retries; rates are then the client's own business.
        self.pacer = pacer or StartPacer(_no_wait)
        self.on_snapshot = on_snapshot
        self.rng = rng or random.Random()
        # The per-file stage keeps the run open while it settles files (it may add child
        # shards), and hears of every operation that ends.
        self.hold = hold or (lambda: False)
        self.on_finished = on_finished or (lambda: None)
        self.in_flight: dict[int, Tracked] = {}
        self.errors: deque[str] = deque(maxlen=20)
        self.resolver = StartResolver(
            client,
            kind,
            ledger,
            settings.resolver,
            adopt=self._adopt,
            resend=self._resend,
            note=self._note_error,
            quiet=self.pacer.quiet,
        )
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stop_error: ApiError | None = None
        self._started = time.monotonic()
        self._finished_processed = 0  # success+failure of operations ended in this run
        self._samples: deque[tuple[float, int]] = deque(maxlen=120)
        self._posts = 0  # starts in progress
        self._final_gets = asyncio.Semaphore(FINAL_GETS_IN_PARALLEL)
        self._files_cache: tuple[float, OutcomeTotals, int, Coverage] | None = None
        self.patience = Patience(settings.give_up_after, time.time())
        # Others whose failing steps also end the run: (what they call, their patience).
        self.more_patience = list(more_patience)
        self._submitter_task: asyncio.Task[None] | None = None
        self._stale_trouble = False
        # operations.list with filter=done=false, until it shows it ignores or rejects the
        # filter (the v1 reference documents only pageSize and pageToken for it).
        self._list_usable = True
        # (seconds, files) of operations seen from start to end in this run: their pace.
        self._durations: deque[tuple[float, int]] = deque(maxlen=100)
        limits.listeners.append(self._on_limit_change)

    # -- public ------------------------------------------------------------------------------

    def on_response(self, event: RequestEvent) -> None:
        """Client listener: every answer feeds the adaptive limits (a 429 cuts one of them)
        and every attempt the run's patience."""
        self._on_attempt(event)
        target = throttle_target(event)
        if target is None:
            if event.status is not None:
                self.limits.on_accepted(event.family.value)
            return
        reason = f"429 on {event.method}"
        if target in (Throttle.CONCURRENCY, Throttle.BOTH):
            self.limits.on_throttled(
                event.family.value, reason, concurrency=True, in_flight=self._running()
            )
        if target in (Throttle.RATE, Throttle.BOTH):
            self.limits.on_throttled(
                event.family.value, reason, counted=target is not Throttle.BOTH
            )

    def wake(self) -> None:
        """New pending shards (children of the per-file stage): look at the queue now."""
        self._wake.set()

    def note_error(self, shard_id: int | None, text: str) -> None:
        """An error for the board's last-errors list (also from the per-file stage)."""
        self._note_error(shard_id, text)

    def stop(self) -> None:
        """Stop submitting and return once what is in progress is recorded.

        Waiting for a slot ends at once; starts already sent are let finish, so that an
        operation they start has its name committed.
        """
        self._stopping.set()
        self._wake.set()

    async def run(self) -> RunResult:
        self._recover()
        # A failing or given-up earlier run is the last word on the API until this one's
        # first success says otherwise (``status`` shows it).
        last = self.ledger.recent_events(1, kinds=API_EVENTS)
        self._stale_trouble = bool(last) and last[-1].kind != "api-ok"
        try:
            async with asyncio.TaskGroup() as tg:
                submitter = self._submitter_task = tg.create_task(self._submitter())
                helpers = [
                    tg.create_task(self._poller()),
                    tg.create_task(self._ticker()),
                    tg.create_task(self.resolver.run()),
                ]
                await asyncio.wait([submitter])  # ends when all is done, or on stop()
                for task in helpers:
                    task.cancel()
        except BaseExceptionGroup as group:
            # A fatal API error (403, 404...) in one task stops them all: report it, not the group.
            raise first_user_error(group) from None
        finally:
            if self.in_flight:
                self._commit_progress()
            self._publish(finished=True)
        if self._stop_error is not None:
            raise self._stop_error
        return RunResult(
            totals=self.ledger.totals(),
            interrupted=self._stopping.is_set(),
            elapsed=time.monotonic() - self._started,
            api_calls={f.value: s.requests for f, s in self.client.stats.families.items()},
            throttled=self.limits.throttled,
            files=self.ledger.files.totals(),
            coverage=read_coverage(self.ledger.conn),
        )

    def _recover(self) -> None:
        """Re-attach to operations a previous run started; look for those it may have."""
        recovered = self.ledger.recover_interrupted()
        for shard in recovered.running:
            assert shard.operation is not None
            self.limits.gate.occupy()
            self._track(shard, shard.operation, counters=(shard.success, shard.failure))
            self.ledger.event(shard.shard_id, "reattached", shard.operation)
        for shard in recovered.unresolved:
            self.limits.gate.occupy()  # its operation, if any, runs against the cap
            self.resolver.add(shard, *shard.lost_window)
        if self.in_flight or recovered.unresolved:
            log.info(
                "recovered", operations=len(self.in_flight), unresolved=len(recovered.unresolved)
            )

    # -- submitting --------------------------------------------------------------------------

    async def _submitter(self) -> None:
        """Take pending shards in order; each start runs as its own task under a gate slot."""
        async with asyncio.TaskGroup() as posts:
            while not self._stopping.is_set():
                batch = self.ledger.next_pending(time.time())
                if not batch:
                    if self._idle():
                        return  # nothing pending, running or unresolved: the run is over
                    await self._sleep_until_woken()
                    continue
                for shard in batch:
                    if not await self._acquire_slot():
                        return
                    if not await self._enter_start():
                        return
                    claimed_at = time.time()
                    self.ledger.claim(shard.shard_id)
                    self._posts += 1
                    posts.create_task(self._submit(shard, claimed_at))  # takes the lane along
                    self.pacer.handed_over()

    async def _enter_start(self) -> bool:
        """The start's rate token and lane, taken before its claim; False (slot given back)
        when a stop came meanwhile."""
        await self.pacer.enter()
        if self._stopping.is_set():
            self.pacer.leave()
            self._release_slot()
            return False
        return True

    def _idle(self) -> bool:
        return (
            not self.in_flight
            and not self._posts
            and not len(self.resolver)
            and self.ledger.next_wakeup() is None
            and not self.hold()
        )

    async def _sleep_until_woken(self) -> None:
        wakeup = self.ledger.next_wakeup()
        delay = 1.0 if wakeup is None else max(0.05, min(5.0, wakeup - time.time()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

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

    async def _submit(self, shard: ShardRun, claimed_at: float) -> None:
        """Start one claimed shard; the gate slot is released when its operation ends."""
        try:
            await self._start(shard, claimed_at)
        finally:
            self.pacer.leave()
            self._posts -= 1
            self._wake.set()

    async def _start(self, shard: ShardRun, claimed_at: float) -> None:
        try:
            ref = await self.kind.start(self.client, shard)
        except ApiError as exc:
            self._start_failed(shard, claimed_at, exc)
            return
        except BaseException:
            # Cancelled mid-POST: the shard stays claimed and is resolved on resume.
            self._release_slot()
            raise
        self.ledger.mark_running(shard.shard_id, ref.name)
        self._track(shard, ref.name, fresh=True)

    def _start_failed(self, shard: ShardRun, claimed_at: float, exc: ApiError) -> None:
        action = after_start_error(exc)
        self._note_error(shard.shard_id, str(exc))
        if action == StartAction.RESOLVE:
            # The slot stays held: the operation may be running against the cap. Its window
            # opens when the last attempt left (earlier attempts provably started nothing).
            sent = exc.sent_at.timestamp() if isinstance(exc, OutcomeUnknownError) else claimed_at
            lost = time.time()
            self.ledger.mark_start_lost(shard.shard_id, sent, lost, str(exc))
            self.resolver.add(shard, sent, lost)
            return
        self._release_slot()
        if action == StartAction.REQUEUE:
            retry_at = time.time() + self._requeue_delay(shard.attempts + 1)
            self.ledger.requeue(shard.shard_id, retry_at, str(exc))
        elif action == StartAction.STOP_RUN:
            self.ledger.requeue(shard.shard_id, 0.0, str(exc))
            raise exc
        else:
            self.ledger.mark_failed(shard.shard_id, str(exc), rpc_code(exc.status))

    def _track(
        self,
        shard: ShardRun,
        operation: str,
        counters: tuple[int, int] = (0, 0),
        *,
        fresh: bool = False,
    ) -> None:
        success, failure = counters
        self.in_flight[shard.shard_id] = Tracked(
            shard, operation, time.monotonic(), success, failure, committed=counters, fresh=fresh
        )
        self._wake.set()

    def _adopt(self, shard: ShardRun, operation: str, reason: str) -> None:
        """The resolver found the operation of a lost start: track it (the slot is held)."""
        self.ledger.adopt(shard.shard_id, operation, reason)
        self._track(shard, operation)

    def _resend(self, shard: ShardRun, reason: str) -> None:
        """The resolver found no operation for a lost start: queue the shard again."""
        self._release_slot()
        retry_at = time.time() + self._requeue_delay(1)
        self.ledger.requeue(shard.shard_id, retry_at, reason)
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
                if self._list_usable and poll_by_list(len(self.in_flight)):
                    if watched and now >= next_list:
                        await self._poll_by_list(watched, finals)
                        next_list = time.monotonic() + self.settings.list_poll.delay(
                            self._oldest_age()
                        )
                    next_due = next_list
                else:
                    due = [t for t in watched if t.next_poll <= now]
                    if due:
                        await self._poll_each(due)
                    next_due = min(
                        (t.next_poll for t in self.in_flight.values() if not t.fetching),
                        default=now + 0.2,
                    )
                await asyncio.sleep(max(0.02, min(next_due - time.monotonic(), 1.0)))

    async def _poll_each(self, due: list[Tracked]) -> None:
        """One ``get`` for each operation due, a bounded number at once (many may be in
        flight when the list cannot be used)."""

        async def one(tracked: Tracked) -> None:
            async with self._final_gets:
                if tracked.shard.shard_id in self.in_flight:
                    await self._poll_one(tracked)

        await asyncio.gather(*(one(t) for t in due))

    def _stop_listing(self, why: str) -> None:
        """From now on, one bounded-parallel ``get`` per operation instead of the list."""
        self._list_usable = False
        self.ledger.event(None, "poll-by-get", f"operations.list {why}: polling with get")
        log.warning("operations.list unusable", why=why)
        for tracked in self.in_flight.values():
            tracked.next_poll = 0.0

    def _oldest_age(self) -> float:
        now = time.monotonic()
        return max((now - t.started for t in self.in_flight.values() if t.holds_slot), default=0.0)

    async def _poll_one(self, tracked: Tracked) -> None:
        try:
            op = await self.client.get_operation(tracked.operation)
        except ApiError as exc:
            self._schedule(tracked)
            self._note_error(tracked.shard.shard_id, f"poll: {exc}")
            action = after_poll_error(exc)
            if action == PollAction.STOP_RUN:
                self._give_up(f"polling {tracked.operation}: {exc}{_REATTACH}")
            elif action == PollAction.LOST and await self._store_exists():
                # Purged, or never ours: the shard is imported again (stored files are skipped).
                lost = f"operation {tracked.operation} not found"
                self._finish(tracked, Judgement(Outcome.TRANSIENT, lost))
            return
        self._observe(tracked, op)

    async def _store_exists(self) -> bool:
        """After a 404 on an operation: whether the store is still there (if not, the run
        stops: every operation and start would fail alike)."""
        store = self.kind.store
        try:
            await self.client.get_dicom_store(store)
        except ApiError as exc:
            if exc.status in (401, 403, 404):
                self._give_up(
                    f"operation not found, and DICOM store {store} answers {exc.status}"
                    f" (deleted during the run, or access revoked?): {exc}; check `target:`"
                    " and the store, then run again"
                )
            return False
        return True

    async def _poll_by_list(self, watched: list[Tracked], finals: asyncio.TaskGroup) -> None:
        """One list call per page for everything in flight; ended operations get one get each,
        in tasks of their own, so that the next list poll does not wait for them."""
        by_name = {t.operation: t for t in watched}
        seen: set[str] = set()
        try:
            async for page in self.client.iter_operation_pages(
                self.kind.store.dataset, "done=false", LIST_PAGE_SIZE
            ):
                for op in page.operations:
                    tracked = by_name.get(op.name)
                    if tracked is not None:
                        seen.add(op.name)
                        self._observe(tracked, op)
                if not list_filter_honoured(op.done for op in page.operations):
                    # Every operation of the dataset comes back (a month of them): paging
                    # through them each poll would cost more than a get each.
                    self._stop_listing("ignores the done=false filter")
                    return
        except ApiError as exc:
            self._note_error(None, f"poll: {exc}")
            for tracked in by_name.values():
                self._schedule(tracked)
            if exc.status in (401, 403, 404):  # every poll would fail alike
                self._give_up(
                    f"listing the operations of {self.kind.store.dataset}: {exc}{_REATTACH}"
                )
            elif exc.status == 400:
                self._stop_listing(f"rejects the done=false filter ({exc})")
            return
        for name in left_the_list(by_name, seen):
            tracked = by_name[name]
            if tracked.shard.shard_id in self.in_flight:
                # Probably ended; its final get says so for certain (an absent entry can be list
                # lag or a page boundary that moved) and only then frees its slot.
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
            self._finish(tracked, self.kind.judge(tracked.shard, op))
        else:
            self._schedule(tracked)

    def _schedule(self, tracked: Tracked) -> None:
        age = time.monotonic() - tracked.started
        if self._list_usable or len(self.in_flight) <= LIST_POLL_THRESHOLD:
            delay = self.settings.poll.delay(age)
        else:
            expected = expected_seconds(self._durations, tracked.shard.expected)
            delay = get_poll_delay(age, expected, self.settings.poll)
        tracked.next_poll = time.monotonic() + delay

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

    def _finish(self, tracked: Tracked, judgement: Judgement) -> None:
        shard = tracked.shard
        self.in_flight.pop(shard.shard_id, None)
        if tracked.fresh and judgement.ran:
            self._durations.append((time.monotonic() - tracked.started, shard.expected))
        self._free_slot(tracked)
        success, failure = tracked.success, tracked.failure
        self._finished_processed += success + failure
        attempts = shard.attempts + 1
        verdict = after_operation(judgement, attempts, self.settings.max_attempts)
        if judgement.error and not judgement.ran:
            self._note_error(shard.shard_id, judgement.error)
        elif failure:
            self._note_error(shard.shard_id, f"{failure} file(s) failed in {tracked.operation}")
        self.ledger.mark_finished(
            shard.shard_id,
            tracked.operation,
            success=success,
            failure=failure,
            error=judgement.error,
            state=verdict.state,
            drift=judgement.drift,
            retry_at=time.time() + self._requeue_delay(attempts) if verdict.retry else None,
            error_code=judgement.error_code,
        )
        if verdict.stop_run and self._stop_error is None:
            self._stop_error = ApiError(judgement.error or f"{self.kind.name} failed; run stopped")
            self.stop()
        self.on_finished()
        self._wake.set()

    # -- limits and board --------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick)
            now = time.time()
            for where, patience in self._patiences():
                if patience.exhausted(now):
                    self._give_up(patience.give_up_message(where, now))
                    break
            self.limits.tick()
            processed = self._processed()
            self._samples.append((time.monotonic(), processed))
            self.limits.observe_throughput(processed, self._running())
            self._publish()

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
        now = time.monotonic()
        trouble = next((p.trouble for _, p in self._patiences() if p.trouble), None)
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
                for t in self.in_flight.values()
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
            files=self._file_totals(finished)[0],
            settling=self._file_totals(False)[1],
            coverage=self._file_totals(False)[2],
            trouble=None if trouble is None else trouble.line(time.time()),
        )

    def _file_totals(self, fresh: bool) -> tuple[OutcomeTotals, int, Coverage]:
        """Per-file outcomes, shards settling and coverage, for the board: counted at most
        every few seconds (scans over the whole ledger)."""
        now = time.monotonic()
        if fresh or self._files_cache is None or now - self._files_cache[0] > FILE_TOTALS_EVERY:
            files = self.ledger.files
            coverage = read_coverage(self.ledger.conn)
            self._files_cache = (now, files.totals(), files.settling_count(), coverage)
        return self._files_cache[1], self._files_cache[2], self._files_cache[3]

    def _publish(self, finished: bool = False) -> None:
        if self.on_snapshot is not None:
            self.on_snapshot(self.snapshot(finished))

    def _on_limit_change(self, change: LimitChange) -> None:
        self.ledger.event(None, "limit", str(change))
        log.info("limit_changed", change=str(change))

    # -- patience ----------------------------------------------------------------------------

    def _patiences(self) -> list[tuple[str, Patience]]:
        return [(self.client.endpoint, self.patience), *self.more_patience]

    def _on_attempt(self, event: RequestEvent) -> None:
        what = attempt_what(event.method, event.status, event.message)
        ok = attempt_ok(event.status)
        if self.patience.on_attempt(ok, what, time.time()) or (ok and self._stale_trouble):
            self._stale_trouble = False
            trouble = self.patience.trouble
            if trouble is None:
                self.ledger.event(None, "api-ok", "API calls succeed again")
            else:
                self.ledger.event(None, "api-failing", redact_text(trouble.what))
                log.warning("api failing", what=trouble.what)

    def _give_up(self, message: str) -> None:
        """Stop the run now with ``message`` (one line for the user). Starts still waiting for
        an answer are cancelled: their shards stay claimed and the next run resolves them."""
        if self._stop_error is not None:
            return
        self._stop_error = ApiError(message)
        self.ledger.event(None, "gave-up", redact_text(message))
        log.error("gave up", message=message)
        self.stop()
        if self._submitter_task is not None:
            self._submitter_task.cancel()

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

    def _requeue_delay(self, attempt: int) -> float:
        s = self.settings
        return requeue_delay(attempt, s.retry_base, s.retry_cap, self.rng)

    def _note_error(self, shard_id: int | None, message: str) -> None:
        prefix = f"shard {shard_id}: " if shard_id is not None else ""
        self.errors.append(prefix + redact_text(message))  # the board is a terminal
        log.warning("error", shard=shard_id, message=message)


_REATTACH = (
    "; the run stopped: fix the credentials or permissions, then run again"
    " (operations already started keep running and are re-attached)"
)


async def _no_wait(family: str) -> None:
    return None


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


__all__ = ["Executor", "ExecutorSettings", "RunResult", "Tracked"]
