"""The executor's decisions as pure functions: no IO, no clock of their own, no sleeping.

Each answers one question the executor meets while it runs, from plain values, so every case is
a unit test (``tests/execution/test_decisions.py``):

- ``throttle_target``: a 429 cuts the concurrency cap or a quota family's rate;
- ``after_start_error``: a refused or failed start requeues, fails the shard, stops the run, or
  needs resolving (the operation may have started);
- ``after_operation``: a judged operation leaves its shard done, failed, queued again or stops
  the run;
- ``after_poll_error``: a failed poll is tried again, means the operation is gone, or stops
  the run (credentials and permissions fail every poll alike);
- ``requeue_delay``: how long a requeued shard waits (full jitter, growing per attempt);
- ``poll_by_list``: one ``operations.list`` for everything in flight, or a ``get`` each;
- ``left_the_list``: which operations a ``done=false`` listing shows ended (their slots are
  handed to the next start at once; the final ``get`` follows in the background).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from bulkmover.errors import ApiError
from bulkmover.execution.kinds import Judgement, Outcome
from bulkmover.healthcare.failures import OutcomeUnknownError
from bulkmover.healthcare.operations import PollSchedule
from bulkmover.healthcare.stats import Family, RequestEvent
from bulkmover.retry import full_jitter
from bulkmover.state.store import ShardState

#: With more operations in flight than this, poll with operations.list instead of one get each:
#: below it a get each costs no more calls than a list, and sees each operation end on its own
#: schedule.
LIST_POLL_THRESHOLD = 4


class Throttle(StrEnum):
    CONCURRENCY = "concurrency"  # too many operations running: fewer at once
    RATE = "rate"  # a per-minute quota: fewer requests per minute in that family
    BOTH = "both"  # a refused start that does not say which: cut both (the safe side)


#: Words in a quota metric or limit (or, lacking those, a message) that name a count of
#: operations running at once rather than a rate.
_RUNNING = ("concurrent", "running", "in flight", "in-flight", "inflight")
_RATE = (
    "quota exceeded",
    "quota metric",
    "quota group",
    "per minute",
    "perminute",
    "per_minute",
    "per second",
    "rate",
    "requests",
)


def throttle_target(event: RequestEvent) -> Throttle | None:
    """What a 429 should cut, or None for any other answer.

    Only a start can hit the running-operations cap; any other family's 429 is its rate.
    A refused start is classified on its ``google.rpc.ErrorInfo`` first (quota metric and
    limit are documented fields; the message is not), then on the message; when neither says
    which limit it was (the cap's wording is not published at all), both are cut: the
    concurrency recovers once starts go through again, and no shard waits on a guess.
    """
    if not event.throttled:
        return None
    if event.family != Family.LRO_START:
        return Throttle.RATE
    if event.quota is not None and (event.quota.metric or event.quota.limit):
        return Throttle.CONCURRENCY if _says(event.quota.names, _RUNNING) else Throttle.RATE
    message = (event.message or "").lower()
    if _says(message, _RUNNING) or ("operations" in message and "quota" not in message):
        return Throttle.CONCURRENCY
    if _says(message, _RATE):
        return Throttle.RATE
    return Throttle.BOTH


def _says(text: str, words: tuple[str, ...]) -> bool:
    return any(word in text for word in words)


class StartAction(StrEnum):
    REQUEUE = "requeue"  # nothing started; try again after a backoff
    RESOLVE = "resolve"  # an operation may have started: find it before anything else
    FAIL_SHARD = "fail-shard"  # this shard's request is wrong; others may be fine
    STOP_RUN = "stop-run"  # every other shard would fail the same way


def after_start_error(error: ApiError) -> StartAction:
    """What a start that raised means for its shard and for the run."""
    if isinstance(error, OutcomeUnknownError):
        return StartAction.RESOLVE
    if error.retriable:
        return StartAction.REQUEUE
    if error.status in (401, 403, 404) or error.status is None:
        # Credentials, permission, a missing store or an endpoint that is not the API: the
        # same for every shard, so stop with the state consistent rather than fail them all.
        return StartAction.STOP_RUN
    return StartAction.FAIL_SHARD


@dataclass(frozen=True)
class Verdict:
    """Where a shard goes after its operation ended."""

    state: ShardState
    retry: bool = False  # PENDING again, after ``requeue_delay``
    stop_run: bool = False


def after_operation(judgement: Judgement, attempts: int, max_attempts: int) -> Verdict:
    """``attempts`` counts this one. A transient failure requeues until ``max_attempts``."""
    match judgement.outcome:
        case Outcome.DONE | Outcome.DONE_WITH_FAILURES:
            return Verdict(ShardState.DONE)
        case Outcome.TRANSIENT if attempts < max_attempts:
            return Verdict(ShardState.PENDING, retry=True)
        case Outcome.SYSTEMIC:
            return Verdict(ShardState.PENDING, stop_run=True)
        case _:
            return Verdict(ShardState.FAILED)


class PollAction(StrEnum):
    RETRY = "retry"  # poll again on the operation's schedule
    LOST = "lost"  # no such operation: gone with its store, or purged (the store tells which)
    STOP_RUN = "stop-run"  # credentials or permissions: every poll fails alike, for ever


def after_poll_error(error: ApiError) -> PollAction:
    """What a failed ``operations.get`` means. Retrying a 401 or 403 only burns quota (it was
    retried five times a second for ever); they stop the run with the fix instead."""
    if error.status in (401, 403):
        return PollAction.STOP_RUN
    if error.status == 404:
        return PollAction.LOST
    return PollAction.RETRY


def requeue_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before a shard's next attempt, after ``attempt`` attempts (1 = the first)."""
    return full_jitter(max(0, attempt - 1), base, cap, rng)


def poll_by_list(in_flight: int) -> bool:
    return in_flight > LIST_POLL_THRESHOLD


def list_filter_honoured(done: Iterable[bool]) -> bool:
    """Whether a page of ``operations.list(filter=done=false)`` honoured its filter: an ended
    operation in it says the server ignores the filter (the v1 reference documents only
    pageSize and pageToken for this method)."""
    return not any(done)


def expected_seconds(samples: Iterable[tuple[float, int]], files: int) -> float | None:
    """How long an operation of ``files`` files should take, from ``(seconds, files)`` of
    operations that ended in this run (the median time per file): None without samples."""
    rates = sorted(seconds / max(n, 1) for seconds, n in samples)
    if not rates:
        return None
    return rates[len(rates) // 2] * max(files, 1)


def get_poll_delay(age: float, expected: float | None, schedule: PollSchedule) -> float:
    """Seconds to the next ``get`` of an operation polled on its own while many are in flight
    (the list cannot be used): nothing is asked before 80% of its expected time, then it is
    polled finely until 1.5 times that, then on ``schedule``. Twenty gets an operation
    (``schedule`` alone, at 400 in flight) cost a seventh of the makespan on two cores."""
    base = schedule.delay(age)
    if expected is None or expected <= 0:
        return base
    if age < 0.8 * expected:
        return max(base, 0.8 * expected - age)
    if age < 1.5 * expected:
        return min(base, max(schedule.minimum, 0.02 * expected))
    return base


def left_the_list(watched: Iterable[str], listed: Collection[str]) -> list[str]:
    """Operations watched before a complete ``done=false`` listing and absent from it: ended.

    Only a listing that went through every page says so; a failed one says nothing.
    """
    return [name for name in watched if name not in listed]


# google.rpc codes of the HTTP statuses a refused start can carry (the mapping Google documents
# for its JSON APIs), so a file failed by a refused start reports the same kind of code as one
# failed inside an operation.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 499: 1, 501: 12, 503: 14}


def rpc_code(status: int | None) -> int:
    """The google.rpc code of an HTTP error status (2, UNKNOWN, when there is none)."""
    if status is None:
        return 2
    return _RPC_CODES.get(status, 13 if status >= 500 else 2)
