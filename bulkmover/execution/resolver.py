"""The IO half of ambiguous starts: list the dataset's operations, match, adopt or send again.

``ambiguity.match_starts`` decides; this runs it as one of the executor's tasks. Starts are
gathered for ``settings.after`` seconds so that one ``operations.list`` pass answers for all of
them (a kill can leave dozens), and so that the server's list has caught up with an operation
created a moment ago. Starts it cannot decide yet wait for the candidates to progress (their
sizes appear) or end, then are sent again; none waits past ``settings.deadline``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from bulkmover.errors import ApiError
from bulkmover.execution.ambiguity import DEFAULT_SKEW, Candidate, Start, match_starts
from bulkmover.execution.kinds import OperationKind
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.operations import operations_started_since
from bulkmover.state.runs import RunLedger, ShardRun

log = structlog.get_logger("bulkmover.resolver")


@dataclass(frozen=True)
class ResolverSettings:
    after: float = 2.0  # seconds from a start's failure to the first look
    every: float = 10.0  # seconds between looks while some stay undecided
    deadline: float = 300.0  # then an undecided start is sent again whatever the candidates do
    # Between our clock and the server's createTime (both NTP-kept). Wider windows overlap
    # lost starts' neighbours and leave more undecided; a start's own window is exact.
    skew: timedelta = DEFAULT_SKEW


@dataclass
class _Unresolved:
    shard: ShardRun
    start: Start
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

    def add(self, shard: ShardRun, sent_at: float, settled_at: float | None) -> None:
        """A start of ``shard`` whose answer was lost: claimed at ``sent_at`` (epoch seconds),
        failed at ``settled_at`` (None: in flight when an earlier run stopped)."""
        start = Start(
            shard.shard_id,
            datetime.fromtimestamp(sent_at, UTC),
            None if settled_at is None else datetime.fromtimestamp(settled_at, UTC),
            shard.expected,
        )
        self._pending[shard.shard_id] = _Unresolved(shard, start, time.monotonic())
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
            await self._look()

    async def _look(self) -> None:
        starts = [u.start for u in self._pending.values()]
        ops = await operations_started_since(
            self.client,
            self.kind.store.dataset,
            min(s.sent_at for s in starts),
            api_method=self.kind.api_method,
            known=self.ledger.known_operations(),
            skew=self.settings.skew,
        )
        candidates = {op.name: Candidate.of(op) for op in ops}
        matching = match_starts(starts, candidates.values(), self.settings.skew)
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
