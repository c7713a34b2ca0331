"""When to read a shard's error log again, when to stop trusting it, and how to find the rest.

Pure functions of what the state file knows and an injected ``now``; the stage does the IO.

Cloud Logging is eventually consistent and capped: an operation that counted ``failure`` files may
have logged fewer, either not yet (ingestion) or never (the cap). The two cannot be told apart
from one read, so a shard is read again with backoff; once its logged count has stopped growing
for ``settle`` seconds (with at least one entry, so the log works) the rest is taken as capped
and *narrowed* (found by other means). With nothing logged at all the stage waits up to the
deadline, since a first entry may still arrive.

>>> s = LogSettings(settle=30, deadline=600)
>>> after_log_read(LogView(failure=5, logged=5, ended_at=0, grew_at=1, reads=1), 2, s).step
<LogStep.SETTLED: 'settled'>
>>> after_log_read(LogView(failure=5, logged=1, ended_at=0, grew_at=1, reads=4), 40, s).step
<LogStep.NARROW: 'narrow'>
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class LogSettings:
    settle: float = 30.0  # seconds without a new entry before a short log counts as capped
    deadline: float = 600.0  # seconds after the operation's end to wait for entries at most
    first_interval: float = 2.0  # seconds before the second read; doubled per read
    max_interval: float = 60.0
    resolve: bool = True  # narrow the unexplained failures (else they end ``unknown``)


@dataclass(frozen=True)
class LogView:
    """What is known of one shard's error log after a read."""

    failure: int  # the operation's failure counter
    logged: int  # its files known failed from the log
    ended_at: float  # when its operation was seen ended (epoch seconds)
    grew_at: float | None  # when ``logged`` last grew
    reads: int  # reads so far


class LogStep(StrEnum):
    SETTLED = "settled"  # every failure is logged: the other files are in the store
    READ = "read"  # read again at ``at``
    NARROW = "narrow"  # the log will not name the rest: find them another way
    GIVE_UP = "give-up"  # the rest stay ``unknown`` (resolution is off)


@dataclass(frozen=True)
class LogDecision:
    step: LogStep
    at: float | None = None
    reason: str = ""


def read_interval(reads: int, settings: LogSettings) -> float:
    """Seconds before the next read after ``reads`` reads: doubling, capped."""
    return float(min(settings.max_interval, settings.first_interval * 2 ** max(0, reads - 1)))


def after_log_read(view: LogView, now: float, settings: LogSettings) -> LogDecision:
    """The next step for a shard whose log was just read."""
    if view.logged >= view.failure:
        return LogDecision(LogStep.SETTLED)
    missing = view.failure - view.logged
    said = f"{missing} of {view.failure} failure(s) not in the error log"
    waited = now - view.ended_at
    if waited >= settings.deadline:
        if not settings.resolve:
            return LogDecision(
                LogStep.GIVE_UP,
                reason=f"{said} after {settings.deadline:.0f} s and failure resolution is off"
                " (run.resolve_failures)",
            )
        return LogDecision(LogStep.NARROW, reason=f"{said} after {settings.deadline:.0f} s")
    quiet = now - max(view.ended_at, view.grew_at or view.ended_at)
    if settings.resolve and view.logged > 0 and quiet >= settings.settle:
        return LogDecision(
            LogStep.NARROW, reason=f"{said}; none new for {quiet:.0f} s (the log is capped)"
        )
    at = now + read_interval(view.reads, settings)
    if settings.resolve and view.logged > 0:
        # Read again when the settle time is up, not a whole doubled interval later.
        at = min(at, now - quiet + settings.settle)
    else:
        at = min(at, view.ended_at + settings.deadline)
    return LogDecision(LogStep.READ, at=at)


def worth_probing_early(view: LogView) -> bool:
    """Start the header probe while the log is still being read: it has come up short twice
    (so it is likelier capped than late), and probing only ever marks files the store holds,
    so it is safe whatever the log says later and hides its time behind the settle wait."""
    return view.reads >= 2 and view.logged < view.failure


class Method(StrEnum):
    """How to find which of a shard's unexplained files failed."""

    NOTHING_LEFT = "nothing-left"  # no candidate file: the rest is in the store
    PROBE = "probe"  # read each candidate's DICOM header, ask the store which it holds
    SPLIT = "split"  # import the candidates again as child shards small enough to be logged
    STOW = "stow"  # STOW-RS each candidate and take the per-instance answer


@dataclass(frozen=True)
class NarrowView:
    """One shard being narrowed."""

    candidates: int  # its files with no outcome yet
    unaccounted: int  # failures the log did not name
    cap: int  # entries its operation logged (the log cap is at least this)
    probed: bool  # its candidates were already checked against the store
    child: bool  # it is itself a child shard of a narrowing


@dataclass(frozen=True)
class NarrowCosts:
    """Estimated seconds, from what the run has seen (defaults: the real API's orders)."""

    operation: float = 30.0  # one small import operation, start to end
    operations_in_flight: int = 8
    stow_file: float = 1.0  # read one file from Cloud Storage and STOW-RS it
    stow_in_flight: int = 4

    def split(self, files: int, cap: int) -> float:
        children = math.ceil(files / max(1, cap))
        return math.ceil(children / max(1, self.operations_in_flight)) * self.operation

    def stow(self, files: int) -> float:
        return math.ceil(files / max(1, self.stow_in_flight)) * self.stow_file


def choose_narrowing(view: NarrowView, costs: NarrowCosts) -> Method:
    """The cheapest way to pin down the unexplained failures of a shard.

    Probing first whenever it can rule files out: a header read is far cheaper than importing a
    file again, and it leaves only the files the store does not hold. Then child imports, which
    the API explains in its own words, unless nothing gets logged at all (a cap of 0), a child
    would only repeat its parent (a child no larger than the cap), or STOW-RS is cheaper.
    """
    if view.candidates == 0:
        return Method.NOTHING_LEFT
    if not view.probed and view.candidates > view.unaccounted:
        return Method.PROBE
    if view.cap == 0 or (view.child and view.candidates <= view.cap):
        return Method.STOW
    if costs.stow(view.candidates) < costs.split(view.candidates, view.cap):
        return Method.STOW
    return Method.SPLIT
