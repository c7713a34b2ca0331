"""Requests-per-minute limits, one per quota family.

A token bucket keeps the rate smooth: at most ``burst`` requests at once, then one every
``60 / rpm`` seconds, so a per-minute quota never sees a spike it would refuse. The limiter is
FIFO-fair and cancellation-safe, and counts what it granted in the last minute: the number the
quota sees, from which a 429 teaches the real quota.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

UNLIMITED = math.inf
MINUTE = 60.0


class TokenBucket:
    """Pure token bucket: ``capacity`` tokens, refilled at ``rate`` tokens per second.

    Over any window of length w it grants at most ``capacity + rate * w`` tokens.
    """

    def __init__(self, rate: float, capacity: float = 1.0, *, now: float = 0.0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp = now

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)  # tokens earned so far are earned at the old rate
        self._rate = rate

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def try_take(self, now: float) -> float:
        """Take one token and return 0, or return the seconds until one is available."""
        if math.isinf(self._rate):
            return 0.0
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        if self._rate <= 0:
            return math.inf
        return (1.0 - self._tokens) / self._rate


class RateLimiter:
    """Requests-per-minute limiter for one quota family; ``await limiter.acquire()`` per request.

    Waiters queue in FIFO order (only the head of the queue sleeps), so a lowered rate takes
    effect on the next grant. ``recent_per_minute()`` counts grants in the last minute: the number
    a per-minute quota sees, used to learn the real quota when a 429 arrives.
    """

    def __init__(
        self,
        requests_per_minute: float = UNLIMITED,
        *,
        burst: float = 2.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._bucket = TokenBucket(requests_per_minute / MINUTE, burst, now=clock())
        self._lock = asyncio.Lock()
        self._grants: deque[float] = deque()
        self.granted = 0

    @property
    def requests_per_minute(self) -> float:
        return self._bucket.rate * MINUTE

    def set_rate(self, requests_per_minute: float) -> None:
        self._bucket.set_rate(requests_per_minute / MINUTE, self._clock())

    def try_acquire(self) -> float:
        """Non-blocking: 0 if granted, else seconds to wait (nothing taken)."""
        wait = self._bucket.try_take(self._clock())
        if wait == 0:
            self._note_grant()
        return wait

    async def acquire(self) -> None:
        """Wait until a request may be sent under the current rate."""
        async with self._lock:
            while (wait := self._bucket.try_take(self._clock())) > 0:
                # Re-check at least every few seconds: the rate may be raised meanwhile.
                await self._sleep(min(wait, 5.0))
            self._note_grant()

    def _note_grant(self) -> None:
        now = self._clock()
        self.granted += 1
        self._grants.append(now)
        while self._grants and self._grants[0] <= now - MINUTE:
            self._grants.popleft()

    def recent_per_minute(self) -> int:
        """Requests granted in the last 60 seconds."""
        now = self._clock()
        while self._grants and self._grants[0] <= now - MINUTE:
            self._grants.popleft()
        return len(self._grants)
