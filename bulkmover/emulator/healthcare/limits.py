"""Pacing and quotas: how fast operations may go, and how many requests a project may send.

>>> limiter = RequestQuota(requests_per_minute=2)
>>> [limiter.take("p", "dicom_ops", now=0.0) for _ in range(3)]
[None, None, 30.0]
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


class Pacer:
    """Spaces events ``1/rate`` seconds apart, shared fairly by concurrent callers.

    Each caller reserves the next free slot before sleeping, so callers from several operations
    interleave; an idle pacer does not bank credit (no burst after a pause). Rate 0 = unlimited.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    def reserve(self, now: float) -> float:
        """The delay before the caller's slot (and book it)."""
        if self.rate <= 0:
            return 0.0
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        return slot - now

    async def wait(self) -> None:
        delay = self.reserve(time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RequestQuota:
    """Token buckets per (project, method family): ``requests_per_minute`` with a minute's burst."""

    def __init__(self, requests_per_minute: int) -> None:
        self.capacity = float(requests_per_minute)
        self.rate = requests_per_minute / 60.0
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, project: str, family: str, now: float | None = None) -> float | None:
        """None when the request may go, else the seconds until it could (Retry-After)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get((project, family))
        if bucket is None:
            bucket = self._buckets[(project, family)] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rate
