"""The run's per-file stage: settle every file of every ended shard, exactly, resumably.

It runs beside the executor, in its own tasks, and only ever talks to the executor through the
state file (child shards it adds are pending shards like any other) and ``wake``:

- *collecting* shards have their error entries read from Cloud Logging, many operations per
  read, again with backoff while entries may still arrive (``decisions.after_log_read``);
- *narrowing* shards (their log names fewer failures than their counter) are probed (each
  candidate's DICOM header against the store), split into child imports small enough for every
  failure to be logged, or STOW-RS'd file by file, whichever ``choose_narrowing`` finds cheaper;
  a narrowing shard settles once its children have.

Every step is a committed transition of the state file, so a killed run resumes where it was:
collecting shards are read again, children already added run (or are re-attached) like any
shard, and a probe repeats only for files it had not settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from bulkmover.errors import ApiError, BulkmoverError, StateError
from bulkmover.execution.patience import Patience
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.resources import StorePath
from bulkmover.outcomes.children import child_shards
from bulkmover.outcomes.collect import (
    MAX_OPERATIONS_PER_READ,
    WINDOW_MARGIN,
    TimeWindow,
    read_import_errors,
)
from bulkmover.outcomes.decisions import (
    LogSettings,
    LogStep,
    LogView,
    Method,
    NarrowCosts,
    NarrowView,
    after_log_read,
    choose_narrowing,
    worth_probing_early,
)
from bulkmover.outcomes.drift import Lister, generations
from bulkmover.state.files import (
    FileLedger,
    FileOutcome,
    FileRef,
    FilesState,
    Purpose,
    SettlingShard,
)
from bulkmover.state.store import ShardState

log = structlog.get_logger("bulkmover.outcomes")

TERMINAL = (ShardState.DONE, ShardState.FAILED)
DELETED = (5, "not in the bucket any more (deleted after planning): not imported")


class FileReader(Lister, Protocol):
    """What the stage needs of Cloud Storage (``bulkmover.gcs.client.StorageClient``)."""

    async def download(self, bucket: str, name: str) -> bytes: ...


class Prober(Protocol):
    """Which of some files the store holds, by their DICOM headers (``bulkmover.inspection``)."""

    def present(self, bucket: str, names: list[str]) -> AsyncIterator[tuple[str, bool]]: ...


@dataclass(frozen=True)
class StageSettings:
    log: LogSettings = LogSettings()
    tick: float = 0.5
    narrowing_in_parallel: int = 4
    stow_in_flight: int = 4
    max_child_files: int = 5000  # a child never holds more than a planned shard may
    costs: NarrowCosts = field(default_factory=NarrowCosts)
    give_up_after: float = 900.0  # seconds of failing steps (no success) before the run stops


class OutcomeStage:
    def __init__(
        self,
        files: FileLedger,
        client: HealthcareClient,
        store: StorePath,
        settings: StageSettings = StageSettings(),
        *,
        storage: FileReader | None = None,
        prober: Prober | None = None,
        wake: Callable[[], None] = lambda: None,
        note: Callable[[int | None, str], None] = lambda shard, text: None,
        operation_seconds: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.files = files
        self.client = client
        self.store = store
        self.settings = settings
        self.storage = storage
        self.prober = prober
        self.wake = wake
        self.note = note
        self.operation_seconds = operation_seconds
        self.clock = clock
        self._reads: dict[int, int] = {}  # log reads per shard in this run
        self._probed: set[int] = set()
        self._early: set[int] = set()  # collecting shards whose log came up short: probe now
        self._active: set[int] = set()  # shards with a narrowing task under way
        self._reading = False
        self._narrowing = asyncio.Semaphore(settings.narrowing_in_parallel)
        self._kick = asyncio.Event()
        # A step that fails is tried again next tick, for ever unless the run gives up: the
        # executor stops the run when this says the stage has failed for too long (Cloud
        # Storage gone, say, while the Healthcare API still answers).
        self.patience = Patience(settings.give_up_after, clock())

    def busy(self) -> bool:
        """Some shard's files are still being settled (the run is not over)."""
        return bool(self._active) or self.files.busy()

    def nudge(self) -> None:
        """Something ended: look now rather than at the next tick."""
        self._kick.set()

    async def run(self) -> None:
        """Until cancelled (the runner cancels it once the executor is done)."""
        async with asyncio.TaskGroup() as tasks:
            while True:
                self._step(tasks)
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self.settings.tick)

    def _step(self, tasks: asyncio.TaskGroup) -> None:
        now = self.clock()
        settling = self.files.settling()
        due = [
            s for s in settling if s.files == FilesState.COLLECTING and s.log_next_read_at <= now
        ]
        if due and not self._reading:
            self._reading = True
            _spawn(tasks, self._read_logs(due))
        for shard in settling:
            if shard.shard_id in self._active:
                continue
            if shard.files == FilesState.COLLECTING:
                if shard.shard_id in self._early and shard.shard_id not in self._probed:
                    self._active.add(shard.shard_id)
                    _spawn(tasks, self._probe_early(shard))
                continue
            self._active.add(shard.shard_id)
            if shard.files == FilesState.CHECKING:
                _spawn(tasks, self._check(shard))
            else:
                _spawn(tasks, self._narrow(shard))

    # -- checking ------------------------------------------------------------------------------

    async def _check(self, shard: SettlingShard) -> None:
        """Flag the files that changed in the bucket; a deleted file was not imported."""
        try:
            async with self._narrowing:
                if self.storage is None:
                    raise BulkmoverError("no Cloud Storage client to list the changed shard")
                now = await generations(self.storage, shard.uri)
                refs = self.files.members(shard.shard_id)
                moved = [
                    (ref, now.get(ref.name)) for ref in refs if now.get(ref.name) != ref.generation
                ]
                if moved:
                    self.files.flag_changed([r for r, _ in moved], [g for _, g in moved])
                    gone = [ref for ref, generation in moved if generation is None]
                    self.files.mark_files(gone, FileOutcome.FAILED, DELETED)
                added = len(now.keys() - {ref.name for ref in refs})
                counted = shard.success + shard.failure
                short = shard.expected - counted if not moved and not added else 0
                self.files.checked(shard.shard_id, shard.failure, uncounted=max(short, 0))
                self._succeeded()
                self.nudge()
        except StateError:
            raise  # the state file itself failed: retrying cannot help, the run stops
        except BulkmoverError as exc:
            self._failed(shard.shard_id, f"checking a changed shard: {exc}")
            await asyncio.sleep(self.settings.tick * 10)
        finally:
            self._active.discard(shard.shard_id)

    # -- collecting ----------------------------------------------------------------------------

    async def _read_logs(self, due: list[SettlingShard]) -> None:
        try:
            for at in range(0, len(due), MAX_OPERATIONS_PER_READ):
                await self._read_batch(due[at : at + MAX_OPERATIONS_PER_READ])
        finally:
            self._reading = False

    async def _read_batch(self, batch: list[SettlingShard]) -> None:
        by_op = {s.operation_id: s for s in batch if s.operation_id}
        starts = [s.submitted_at or s.ended_at for s in batch]
        window = TimeWindow(
            min(starts) - WINDOW_MARGIN, max(s.ended_at for s in batch) + WINDOW_MARGIN
        )
        try:
            found = await read_import_errors(
                self.client, self.store, {op: s.bucket for op, s in by_op.items()}, window
            )
        except ApiError as exc:
            self.note(None, f"reading error logs: {exc}")
            log.warning("log read failed", error=str(exc), shards=len(batch))
            found = None
        now = self.clock()
        for op, shard in by_op.items():
            reads = self._reads[shard.shard_id] = self._reads.get(shard.shard_id, 0) + 1
            logged = shard.logged
            if found is not None:
                logged = self.files.record_failures(shard.shard_id, found[op], now)
            grew_at = now if logged > shard.logged else shard.log_grew_at
            view = LogView(shard.failure, logged, shard.ended_at, grew_at, reads)
            self._after_read(shard, view, now)

    def _after_read(self, shard: SettlingShard, view: LogView, now: float) -> None:
        decision = after_log_read(view, now, self.settings.log)
        if (
            decision.step == LogStep.READ
            and self.settings.log.resolve
            and worth_probing_early(view)
        ):
            self._early.add(shard.shard_id)
        if decision.step == LogStep.SETTLED:
            self.files.settle(shard.shard_id, FileOutcome.IMPORTED)
        elif decision.step == LogStep.READ:
            assert decision.at is not None
            self.files.schedule_read(shard.shard_id, decision.at)
        elif decision.step == LogStep.NARROW:
            self.files.start_narrowing(shard.shard_id, decision.reason)
            self.nudge()
        else:
            self.files.settle(shard.shard_id, FileOutcome.UNKNOWN, decision.reason)

    # -- patience ------------------------------------------------------------------------------

    def _succeeded(self) -> None:
        self.patience.on_attempt(True, "", self.clock())

    def _failed(self, shard_id: int | None, what: str) -> None:
        self.note(shard_id, what)
        self.patience.on_attempt(False, what, self.clock())

    # -- narrowing -----------------------------------------------------------------------------

    async def _probe_early(self, shard: SettlingShard) -> None:
        """The header probe of a shard whose log is still read (see ``worth_probing_early``)."""
        try:
            async with self._narrowing:
                if self.prober is not None:
                    candidates = self.files.members(shard.shard_id, FileOutcome.PENDING)
                    await self._probe(shard, candidates)
                self._probed.add(shard.shard_id)
                left = len(self.files.members(shard.shard_id, FileOutcome.PENDING))
                unexplained = shard.failure - self.files.failed_count(shard.shard_id)
                if 0 < left <= unexplained:
                    # Every file left failed: waiting out the settle time could only bring
                    # their reasons, which narrowing gets at once.
                    self.files.start_narrowing(
                        shard.shard_id,
                        f"the probe left {left} file(s), all failed; the log named"
                        f" {shard.failure - unexplained} of {shard.failure}",
                    )
                    self.nudge()
                self._succeeded()
        except StateError:
            raise  # the state file itself failed: retrying cannot help, the run stops
        except BulkmoverError as exc:
            self._failed(shard.shard_id, f"probing a shard's files: {exc}")
        finally:
            self._early.discard(shard.shard_id)
            self._active.discard(shard.shard_id)

    async def _narrow(self, shard: SettlingShard) -> None:
        try:
            async with self._narrowing:
                # A probe and what follows it run in one go: the follow-up (a handful of
                # STOW-RS, or child shards) must not queue behind other shards' probes.
                while await self._narrow_step(shard):
                    pass
                self._succeeded()
        except StateError:
            raise  # the state file itself failed: retrying cannot help, the run stops
        except BulkmoverError as exc:
            # Cloud Storage or the store failed under the probe or STOW: try again next tick
            # (the deadline does not apply: narrowing only ends with an answer, or the run
            # gives up on it, see ``patience``).
            self._failed(shard.shard_id, f"resolving failures: {exc}")
            log.warning("narrowing failed", shard=shard.shard_id, error=str(exc))
            await asyncio.sleep(self.settings.tick * 10)
        finally:
            self._active.discard(shard.shard_id)

    async def _narrow_step(self, shard: SettlingShard) -> bool:
        """One step; True when another should follow at once (after a probe)."""
        children = self.files.children(shard.shard_id)
        if children:
            if all(
                state in TERMINAL and files == FilesState.SETTLED for _, state, files in children
            ):
                left = self.files.members(shard.shard_id, FileOutcome.PENDING)
                if left:  # a file no child covered (cannot happen unless the ledger changed)
                    self.files.settle(
                        shard.shard_id, FileOutcome.UNKNOWN, "no child shard covered the file"
                    )
                else:
                    self.files.settle(shard.shard_id, FileOutcome.IMPORTED, "children settled")
            return False
        candidates = self.files.members(shard.shard_id, FileOutcome.PENDING)
        view = NarrowView(
            candidates=len(candidates),
            unaccounted=max(0, shard.failure - shard.logged),
            cap=shard.logged,
            probed=shard.shard_id in self._probed or self.prober is None,
            child=shard.parent_id is not None,
        )
        method = choose_narrowing(view, self._costs())
        log.info("narrowing", shard=shard.shard_id, method=method.value, candidates=len(candidates))
        if method == Method.NOTHING_LEFT:
            self.files.settle(shard.shard_id, FileOutcome.IMPORTED)
        elif method == Method.PROBE:
            await self._probe(shard, candidates)
            self._probed.add(shard.shard_id)
            return True
        elif method == Method.SPLIT:
            await self._split(shard, candidates)
        else:
            await self._stow(shard, candidates)
            self.files.settle(
                shard.shard_id, FileOutcome.UNKNOWN, "STOW-RS gave no answer for the file"
            )
        return False

    def _costs(self) -> NarrowCosts:
        observed = self.operation_seconds()
        costs = self.settings.costs
        return costs if observed is None else dataclasses.replace(costs, operation=observed)

    async def _probe(self, shard: SettlingShard, candidates: list[FileRef]) -> None:
        """Candidates whose instance the store holds were imported (or were there already)."""
        assert self.prober is not None
        by_name = {ref.name: ref for ref in candidates}
        present: list[FileRef] = []
        async for name, held in self.prober.present(shard.bucket, list(by_name)):
            if held:
                present.append(by_name[name])
                if len(present) >= 500:
                    self.files.mark_files(present, FileOutcome.IMPORTED)
                    present = []
        self.files.mark_files(present, FileOutcome.IMPORTED)

    async def _split(self, shard: SettlingShard, candidates: list[FileRef]) -> None:
        per_child = max(1, min(shard.logged, self.settings.max_child_files))
        built = child_shards(
            shard.uri,
            self.files.members(shard.shard_id),
            {ref.key for ref in candidates},
            per_child,
        )
        if built.unaddressable:
            await self._stow(shard, built.unaddressable)
        self.files.add_children(
            shard.shard_id,
            Purpose.RESOLVE,
            ((child.uri, child.prefix, child.files) for child in built.shards if child.files),
        )
        self.wake()

    async def _stow(self, shard: SettlingShard, refs: Iterable[FileRef]) -> None:
        """Each file read from Cloud Storage and stored with STOW-RS; the answer is its outcome."""
        if self.storage is None:
            raise BulkmoverError("no Cloud Storage client to read files for STOW-RS")
        gate = asyncio.Semaphore(self.settings.stow_in_flight)

        async def one(ref: FileRef) -> None:
            async with gate:
                try:
                    assert self.storage is not None
                    data = await self.storage.download(shard.bucket, ref.name)
                    answer = await self.client.store_instance(self.store, data)
                except ApiError as exc:
                    self.files.mark_files([ref], FileOutcome.UNKNOWN, (2, f"STOW-RS: {exc}"))
                    return
            if answer.outcome == "failed":
                code = answer.code if answer.code is not None else 2
                # Say where the reason comes from: STOW-RS words it unlike the import's log.
                reason = f"STOW-RS: {answer.message}"
                self.files.mark_files([ref], FileOutcome.FAILED, (code, reason))
            else:
                self.files.mark_files([ref], FileOutcome.IMPORTED)

        async with asyncio.TaskGroup() as tasks:
            for ref in refs:
                tasks.create_task(one(ref))


def _spawn(tasks: asyncio.TaskGroup, coro: Coroutine[object, object, None]) -> None:
    """``tasks.create_task(coro)``; a group already shutting down refuses it, and then the
    coroutine is closed (else Python warns that it was never awaited, on the user's terminal)."""
    try:
        tasks.create_task(coro)
    except RuntimeError:
        coro.close()
        raise
