"""Starts whose answer was lost: find the operation they may have started before sending again.

A start POST that timed out, lost its connection after sending, or got a 500, may or may not
have created an operation (``OutcomeUnknownError``); so may a start in flight when a run was
killed (its shard is claimed, with no operation name). Sending it again would usually be harmless
for the data (import skips stored instances) but leaves the first operation running untracked and
the shard imported twice. So the executor lists the dataset's operations and adopts what it finds.

The API does not echo the request: an operation's metadata has its method and ``createTime``,
not the URI it imports. What ties an operation to a start is time: a start sent at ``sent`` whose
failure came back at ``lost`` can only have created an operation in between. ``createTime`` is
on the server's clock, so the window is carried over with the offset between the clocks, which
the run measures itself (``clock_offset``): every operation it started and recorded was created
between its claim and the record of its answer, which brackets the offset; many operations
bracket it to a few milliseconds. ``match_starts`` is the pure part, sound under one assumption
(the unknown operations of this method in the dataset since the earliest start are ours):

1. A start with no candidate in its window started nothing: send it again.
2. Repeatedly, a candidate inside exactly one start's window is that start's operation (a start
   creates at most one): adopt it.
3. What remains are clusters of starts whose windows overlap. If a cluster has as many
   candidates as starts, every start in it created one: adopt them all, pairing by the
   candidates' size (units in the operation's counter, against the shard's planned count) where
   that pairs them uniquely, else in time order. Every shard is then imported by exactly one
   operation; only counters may be swapped between shards of the cluster, which is said in the
   event.
4. Fewer candidates than starts: some did not start and nothing says which. Those stay
   undecided; the resolver looks again (sizes appear as operations progress) and, once every
   candidate has ended, sends the undecided starts again (a second import of the ones that had
   started: skipped instances, never a missing shard) and records the candidates as orphans.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bulkmover.healthcare.operations import Operation

#: The clock offset assumed when the run has no recorded operation to measure it from.
DEFAULT_SKEW = timedelta(seconds=1)


@dataclass(frozen=True)
class Start:
    """A start whose outcome is unknown, with its window on the server's clock."""

    shard_id: int
    earliest: datetime  # its operation, if any, was created at or after this ...
    latest: datetime | None  # ... and at or before this (None: no bound, the run died)
    expected: int  # units the shard's operation would report


@dataclass(frozen=True)
class Anchor:
    """An operation the run started and recorded: created between ``sent`` and ``answered``
    (epoch seconds, our clock) at ``created`` (the server's clock)."""

    created: datetime
    sent: float
    answered: float


def clock_offset(anchors: Iterable[Anchor]) -> tuple[float, float] | None:
    """Bounds (lo, hi) of server clock minus ours, in seconds; None when there is nothing to
    measure, or the bounds contradict each other (a clock jumped)."""
    lo, hi = -math.inf, math.inf
    for a in anchors:
        at = a.created.timestamp()
        lo, hi = max(lo, at - a.answered), min(hi, at - a.sent)
    return (lo, hi) if lo <= hi and not math.isinf(lo) else None


def server_window(
    sent: float, lost: float | None, offset: tuple[float, float] | None, skew: timedelta
) -> tuple[datetime, datetime | None]:
    """Where, on the server's clock, an operation created between ``sent`` and ``lost`` (our
    clock) has its createTime."""
    lo, hi = offset if offset is not None else (-skew.total_seconds(), skew.total_seconds())
    earliest = datetime.fromtimestamp(sent + lo, UTC)
    return earliest, None if lost is None else datetime.fromtimestamp(lost + hi, UTC)


@dataclass(frozen=True)
class Candidate:
    """An operation of the kind's method that no shard owns."""

    name: str
    created: datetime | None
    done: bool
    size: int | None  # success + failure + pending once the server has counted its input

    @classmethod
    def of(cls, op: Operation) -> Candidate:
        c = op.counter
        total = c.success + c.failure + c.pending
        return cls(op.name, op.metadata.create_time, op.done, total if total > 0 else None)


@dataclass
class Matching:
    adopted: dict[int, str] = field(default_factory=dict)  # shard id -> operation name
    by_order: set[int] = field(default_factory=set)  # adopted in a cluster paired by time order
    not_started: list[int] = field(default_factory=list)
    undecided: list[int] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # candidates of undecided clusters


def _inside(created: datetime | None, start: Start) -> bool:
    if created is None:
        return True  # no time: it could be anyone's
    if created < start.earliest:
        return False
    return start.latest is None or created <= start.latest


def match_starts(starts: Sequence[Start], candidates: Iterable[Candidate]) -> Matching:
    """Pair unknown-outcome starts with the operations they may have created (see the module)."""
    pool = {c.name: c for c in candidates}
    edges: dict[int, set[str]] = {
        s.shard_id: {n for n, c in pool.items() if _inside(c.created, s)} for s in starts
    }
    result = Matching()
    for shard_id, names in edges.items():
        if not names:
            result.not_started.append(shard_id)
    live = {sid: names for sid, names in edges.items() if names}
    _propagate(live, result)
    for cluster in _clusters(live):
        names = set().union(*(live[sid] for sid in cluster))
        if len(names) == len(cluster):
            _pair_cluster([s for s in starts if s.shard_id in cluster], pool, names, result)
        else:
            result.undecided.extend(sorted(cluster))
            result.orphans.extend(sorted(names))
    return result


def _propagate(live: dict[int, set[str]], result: Matching) -> None:
    """Adopt each candidate that only one start's window holds, while any is left.

    Sound because a start creates at most one operation and every candidate is some start's:
    a candidate only ``sid`` could have made is ``sid``'s, and ``sid``'s other candidates are
    then someone else's.
    """
    while True:
        owners: dict[str, list[int]] = {}
        for sid, names in live.items():
            for name in names:
                owners.setdefault(name, []).append(sid)
        sole = sorted((sids[0], name) for name, sids in owners.items() if len(sids) == 1)
        if not sole:
            return
        for sid, name in sole:
            if sid in live:  # a start with two sole candidates keeps the first
                result.adopted[sid] = name
                del live[sid]


def _clusters(live: dict[int, set[str]]) -> list[set[int]]:
    """Starts linked by shared candidates, as connected groups."""
    seen: set[int] = set()
    groups = []
    for sid in sorted(live):
        if sid in seen:
            continue
        group, names, frontier = {sid}, set(live[sid]), [sid]
        while frontier:
            frontier.pop()
            for other, theirs in live.items():
                if other not in group and theirs & names:
                    group.add(other)
                    names |= theirs
                    frontier.append(other)
        seen |= group
        groups.append(group)
    return groups


def _pair_cluster(
    starts: list[Start], pool: dict[str, Candidate], names: set[str], result: Matching
) -> None:
    """As many candidates as starts: each start made one. Pair by size if that is unique."""
    candidates = [pool[n] for n in names]
    by_size = _unique_size_pairing(starts, candidates)
    if by_size is not None:
        result.adopted.update(by_size)
        return
    never = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(candidates, key=lambda c: (c.created or never, c.name))
    in_order = sorted(starts, key=lambda s: (s.earliest, s.shard_id))
    for start, cand in zip(in_order, ordered, strict=True):
        result.adopted[start.shard_id] = cand.name
        result.by_order.add(start.shard_id)


def _unique_size_pairing(starts: list[Start], candidates: list[Candidate]) -> dict[int, str] | None:
    """Pairs when every candidate's size is known and names exactly one start's planned size."""
    if any(c.size is None for c in candidates):
        return None
    expected = [s.expected for s in starts]
    if len(set(expected)) != len(expected):
        return None
    by_expected = {s.expected: s.shard_id for s in starts}
    pairs = {by_expected.get(c.size or -1): c.name for c in candidates}
    if None in pairs or len(pairs) != len(starts):
        return None
    return {sid: name for sid, name in pairs.items() if sid is not None}
