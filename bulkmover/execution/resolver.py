"""The IO half of ambiguous starts: list the dataset's operations, match, adopt or send again.

``ambiguity.match_starts`` decides; this runs it as one of the executor's tasks. Starts are
gathered for ``settings.after`` seconds so that one ``operations.list`` pass answers for all of
them (a kill leaves one per start lane, faults add more), and so that the server's list has
caught up with an operation created a moment ago. Starts it cannot decide yet wait for the
candidates to progress (their sizes appear) or end, then are sent again; none waits past
``settings.deadline``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta

from bulkmover.errors import ApiError
from bulkmover.execution.ambiguity import (
    DEFAULT_SKEW,
    Anchor,
    Candidate,
    Start,
    clock_offset,
    match_starts,
    server_window,
)
from bulkmover.execution.kinds import OperationKind
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.operations import Operation, iter_operations, same_method
from bulkmover.state.runs import RunLedger, ShardRun


@dataclass(frozen=True)
class ResolverSettings:
    after: float = 2.0  # seconds from a start's failure to the first look
    every: float = 10.0  # seconds between looks while some stay undecided
    deadline: float = 300.0  # then an undecided start is sent again whatever the candidates do
    # The clock offset assumed before the run has recorded an operation to measure it from.
    skew: timedelta = DEFAULT_SKEW


@dataclass
class _Unresolved:
    shard: ShardRun
    sent: float  # epoch seconds, our clock
    lost: float | None
    since: float  # monotonic, when it became ambiguous


Adopt = Callable[[ShardRun, str, str], None]  # shard, operation name, reason
Resend = Callable[[ShardRun, str], None]  # shard, reason


class StartResolver:
    """Holds the starts whose outcome is unknown until each is adopted or sent again."""

    def __init__(
        self,
        client: HealthcareClient,
        kind: OperationKind,
        ledger: RunLedger,
        settings: ResolverSettings,
        *,
        adopt: Adopt,
        resend: Resend,
        note: Callable[[int | None, str], None],
        quiet: Callable[[], AbstractAsyncContextManager[None]],
    ) -> None:
        self.client = client
        self.kind = kind
        self.ledger = ledger
        self.settings = settings
        self._adopt, self._resend, self._note = adopt, resend, note
        self.quiet = quiet
        self._pending: dict[int, _Unresolved] = {}
        self._wake = asyncio.Event()
        self._next_look = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, shard: ShardRun, sent_at: float, lost_at: float | None) -> None:
        """A start of ``shard`` whose answer was lost: its last attempt left at ``sent_at``
        (epoch seconds), its failure came at ``lost_at`` (None: in flight when a run died)."""
        self._pending[shard.shard_id] = _Unresolved(shard, sent_at, lost_at, time.monotonic())
        self._next_look = max(self._next_look, time.monotonic() + self.settings.after)
        self._wake.set()

    async def run(self) -> None:
        """Forever (the executor cancels it): look whenever starts wait and one is due."""
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._next_look - time.monotonic()
            if delay > 0:
                await asyncio.sleep(min(delay, 1.0))
                continue
            try:
                await self.look()
            except ApiError as exc:
                self._note(None, f"looking for operations of lost starts: {exc}")
            self._next_look = time.monotonic() + self.settings.every

    async def look(self) -> None:
        """One pass: list, match, act on what is decided. No start of this run is under way
        meanwhile (``quiet``): an operation it created but not yet recorded would look lost."""
        if not self._pending:
            return
        async with self.quiet():
            ops = await iter_operations(self.client, self.kind.store.dataset, page_size=1000)
            self._decide(ops)

    def _decide(self, ops: list[Operation]) -> None:
        times = self.ledger.operation_times()
        anchors = [
            Anchor(op.metadata.create_time, sent, answered)
            for op in ops
            if op.name in times
            and op.metadata.create_time is not None
            and (sent := times[op.name][0]) is not None
            and (answered := times[op.name][1]) is not None
        ]
        offset = clock_offset(anchors)
        starts = [
            Start(u.shard.shard_id, *server_window(u.sent, u.lost, offset, self.settings.skew),
                  u.shard.expected)
            for u in self._pending.values()
        ]  # fmt: skip
        since = min(s.earliest for s in starts)
        candidates = {
            op.name: Candidate.of(op)
            for op in ops
            if op.name not in times
            and same_method(op.metadata.api_method_name, self.kind.api_method)
            and (op.metadata.create_time is None or op.metadata.create_time >= since)
        }
        matching = match_starts(starts, candidates.values())
        for sid, name in matching.adopted.items():
            how = "paired by time order in a cluster" if sid in matching.by_order else "matched"
            self._adopt(self._pending.pop(sid).shard, name, f"start outcome unknown; {how}")
        for sid in matching.not_started:
            self._resend(self._pending.pop(sid).shard, "start outcome unknown; none started")
        self._give_up_on(matching.undecided, [candidates[n] for n in matching.orphans])

    def _give_up_on(self, undecided: list[int], orphans: list[Candidate]) -> None:
        """Send undecided starts again once their candidates all ended (nothing more to learn)
        or the deadline passed; the candidates are recorded so none ran unaccounted for."""
        if not undecided:
            return
        waited = time.monotonic() - min(self._pending[sid].since for sid in undecided)
        if not all(c.done for c in orphans) and waited < self.settings.deadline:
            return
        names = ", ".join(c.name.rsplit("/", 1)[-1] for c in orphans)
        self.ledger.event(
            None,
            "orphans",
            f"{len(orphans)} operation(s) [{names}] could not be told apart among "
            f"{len(undecided)} lost start(s); those shards are sent again",
        )
        for sid in undecided:
            self._resend(self._pending.pop(sid).shard, "start outcome unknown; undecidable")
