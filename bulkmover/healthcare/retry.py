"""Retry policy for Healthcare and Logging requests: which failures to retry and how long to wait.

Exponential backoff with full jitter (sleep a uniform random time in ``[0, base * 2**attempt]``,
capped), so many clients that failed together do not retry together. A ``Retry-After`` header
wins over the computed backoff: the server knows when the quota refills.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# For requests that start an operation (import/export): statuses that prove no operation was
# created, so the POST may be sent again. 429 is a refusal by quota; 503 UNAVAILABLE means the
# service did not take the request. A 500/502/504 or a connection lost after sending may hide a
# started operation: the client reports those as OutcomeUnknownError instead of retrying.
NOT_STARTED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry one request.

    ``max_attempts`` counts the first try. ``max_retry_after`` caps a server's Retry-After so a
    bogus header cannot stall a run for hours. ``not_started_statuses`` are the answers to an
    import/export POST that prove no operation started (so it is re-sent); add 500 only for a
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
        ceiling = min(self.max_delay, self.base_delay * (2.0**retry))
        jitter = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            # Honour the server, plus a little jitter so a crowd told "5 s" spreads out.
            return min(self.max_retry_after, retry_after) + self.rng.uniform(0.0, self.base_delay)
        return jitter


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
