"""The one retry engine: which failures each API repeats, how long to wait, when to stop.

Every client (Healthcare and Logging, the Cloud Storage lister, the corpus sink) sends through
``send_with_retries`` and reads its answer from a pure ``decide``:

* ``decide(outcome, attempt, policy, api, starts_operation)`` takes what one attempt did (HTTP
  status or none, whether a connection was made, a Retry-After) and returns a ``Decision``:
  ``RETRY`` after ``delay`` seconds, ``FINAL`` (the answer stands: a success, or an error that
  another try would repeat), ``EXHAUSTED`` (transient, but no attempts left) or
  ``OUTCOME_UNKNOWN`` (a call that starts an operation failed after it may have started one);
* ``TransientErrors`` says, per API, which answers are worth another attempt and why;
* ``RetryPolicy`` says how often and how long: exponential backoff with full jitter (a uniform
  wait in ``[0, min(max_delay, base_delay * 2**retry)]``, so clients that failed together do not
  retry together), and a server's ``Retry-After`` wins (it knows when the quota refills).

Why not tenacity or google-api-core's ``AsyncRetry``: both decide from the exception (or result)
alone, with no third outcome between "retry" and "raise" for a POST that may have started an
operation; the Healthcare client must emit one ``RequestEvent`` per attempt that already knows
whether a retry follows, and await ``before_request`` before every attempt, which tenacity only
reaches through ``before``/``after`` hooks that run before the retry decision is made.
google-api-core retries against a deadline, not a count, and ignores ``Retry-After``; neither is
a declared dependency. The loop left over is fifteen lines over pure, separately tested
decisions, and costs nothing measurable per request (``benchmarks/healthcare_client.py``).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")

# For requests that start an operation (import/export): statuses that prove no operation was
# created, so the POST may be sent again. 429 is a refusal by quota; 503 UNAVAILABLE means the
# service did not take the request. A 500/502/504 or a connection lost after sending may hide a
# started operation: those become OUTCOME_UNKNOWN instead of a retry.
NOT_STARTED_STATUSES = frozenset({429, 503})


def full_jitter(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``retry`` (0 = the first retry): uniform in
    ``[0, min(cap, base * 2**retry)]`` ("full jitter": spreads a crowd that failed together).

    >>> full_jitter(3, 0.5, 2.0, random.Random(1)) <= 2.0
    True
    """
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(retry, 64)))


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry one request.

    ``max_attempts`` counts the first try. ``max_retry_after`` caps a server's Retry-After so a
    bogus header cannot stall a run for hours. ``not_started_statuses`` are the answers to a POST
    that starts an operation which prove none started (so it is re-sent); add 500 only for a
    server known to fail before any effect (the emulator does).
    """

    max_attempts: int = 7
    base_delay: float = 0.5
    max_delay: float = 32.0
    max_retry_after: float = 120.0
    not_started_statuses: frozenset[int] = NOT_STARTED_STATUSES
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry).

        >>> RetryPolicy(rng=random.Random(1)).delay(0, retry_after=7.0) >= 7.0
        True
        """
        if retry_after is not None:
            # Honour the server, plus a little jitter so a crowd told "5 s" spreads out.
            return min(self.max_retry_after, retry_after) + self.rng.uniform(0.0, self.base_delay)
        return full_jitter(retry, self.base_delay, self.max_delay, self.rng)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt did on the wire, as far as retrying cares.

    ``status`` is None when no HTTP answer came back; ``connected`` is False only when no
    connection was ever made (the request certainly never reached the server). ``auth_retry``:
    the answer is a 401 and the sender has just dropped its cached token, so one more attempt
    with fresh credentials may pass (the sender allows that once per call).
    """

    status: int | None
    connected: bool = True
    retry_after: float | None = None
    auth_retry: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class TransientErrors:
    """Which failures of one API are transient (worth the same request again), and why.

    ``statuses``: HTTP answers that another attempt may not repeat. ``unconnected``: whether a
    connection that was never made is retried (False: report the unreachable endpoint at once).
    A connection lost or timed out after it was made is always transient.
    """

    api: str
    statuses: frozenset[int]
    unconnected: bool = True

    def transient(self, outcome: Outcome) -> str | None:
        """Why ``outcome`` is worth another attempt, or None if it is not."""
        if outcome.status is None:
            if outcome.connected:
                return "connection lost or timed out"
            return "no connection made" if self.unconnected else None
        if outcome.status == 401 and outcome.auth_retry:
            return "401: a fresh token may be accepted"
        if outcome.status in self.statuses:
            return f"{outcome.status} is transient for {self.api}"
        return None


# Healthcare and Logging: 429 RESOURCE_EXHAUSTED (quota refills), 500 INTERNAL and 503
# UNAVAILABLE (Google's guidance: retry with backoff), 502/504 (a front end or proxy gave up).
# Other 4xx describe the request itself and would fail the same way again.
HEALTHCARE = TransientErrors("Healthcare/Logging", frozenset({429, 500, 502, 503, 504}))

# Cloud Storage's documented retry strategy adds 408 (request timeout) to 429 and the 5xx answers
# Google's own storage client retries (500, 502, 503, 504).
CLOUD_STORAGE = TransientErrors("Cloud Storage", frozenset({408, 429, 500, 502, 503, 504}))

# The corpus sink writes to the same API, but a connection refused there almost always means the
# local emulator is not running: saying so at once beats a minute of retries.
CORPUS_UPLOADS = TransientErrors("Cloud Storage uploads", CLOUD_STORAGE.statuses, unconnected=False)


class Verdict(StrEnum):
    RETRY = "retry"  # send again after Decision.delay
    FINAL = "final"  # the answer stands: a success, or an error another try would repeat
    EXHAUSTED = "exhausted"  # transient, but that was the last attempt
    OUTCOME_UNKNOWN = "outcome_unknown"  # an operation may have started: do not resend


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    delay: float = 0.0

    @property
    def retrying(self) -> bool:
        return self.verdict is Verdict.RETRY


def may_have_started(outcome: Outcome, policy: RetryPolicy) -> bool:
    """Could a failed POST that starts an operation have started one anyway?

    Yes after a connection that was made and then lost or timed out (the server may have read
    the request), and after a 5xx that does not prove a refusal (``not_started_statuses``).
    """
    if outcome.status is None:
        return outcome.connected
    return outcome.status >= 500 and outcome.status not in policy.not_started_statuses


def decide(
    outcome: Outcome,
    attempt: int,
    policy: RetryPolicy,
    api: TransientErrors,
    *,
    starts_operation: bool = False,
) -> Decision:
    """What to do after attempt number ``attempt`` (1 = the first) ended with ``outcome``.

    Pure but for ``policy.delay``'s random draw, which happens only on RETRY.
    """
    if outcome.ok:
        return Decision(Verdict.FINAL, "success")
    if starts_operation and may_have_started(outcome, policy):
        return Decision(Verdict.OUTCOME_UNKNOWN, "the operation may have started")
    why = api.transient(outcome)
    if why is None:
        return Decision(Verdict.FINAL, "not transient")
    if attempt >= policy.max_attempts:
        return Decision(Verdict.EXHAUSTED, f"{why}; no attempts left")
    return Decision(Verdict.RETRY, why, policy.delay(attempt - 1, outcome.retry_after))


@dataclass(frozen=True, slots=True)
class Last(Generic[T]):
    """The attempt ``send_with_retries`` stopped at: its number, outcome, detail and decision."""

    attempt: int
    outcome: Outcome
    detail: T
    decision: Decision


async def send_with_retries(
    send: Callable[[int], Awaitable[tuple[Outcome, T]]],
    policy: RetryPolicy,
    api: TransientErrors,
    *,
    starts_operation: bool = False,
    observe: Callable[[int, Outcome, T, Decision], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Last[T]:
    """Call ``send(attempt)`` until ``decide`` says stop; return the last attempt.

    ``send`` does one attempt and says what happened (an ``Outcome`` plus whatever the caller
    needs later: a body, an exception); an exception it raises ends the loop unchanged.
    ``observe`` sees every attempt with its decision before any wait (events, counters, logs).
    The caller turns a non-success ``Last`` into its own error.
    """
    attempt = 0
    while True:
        attempt += 1
        outcome, detail = await send(attempt)
        decision = decide(outcome, attempt, policy, api, starts_operation=starts_operation)
        if observe is not None:
            observe(attempt, outcome, detail, decision)
        if decision.verdict is not Verdict.RETRY:
            return Last(attempt, outcome, detail, decision)
        await sleep(decision.delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
