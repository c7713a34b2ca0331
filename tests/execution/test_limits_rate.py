"""Token bucket and rate limiter as pure units: a fake clock whose ``sleep`` only advances it."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.execution.limits import RateLimiter, TokenBucket


class FakeClock:
    """A clock the test moves; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.05, max_value=50.0),
    capacity=st.floats(min_value=1.0, max_value=5.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=200),
)
def test_token_bucket_never_exceeds_rate_over_any_window(
    rate: float, capacity: float, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, capacity, now=0.0)
    now, grants = 0.0, []
    for gap in gaps:
        now += gap
        if bucket.try_take(now) == 0:
            grants.append(now)
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            window = grants[j] - grants[i]
            assert j - i + 1 <= capacity + rate * window + 1e-6


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(min_value=0.1, max_value=20.0), now=st.floats(min_value=0, max_value=1e6))
def test_token_bucket_wait_is_exactly_enough(rate: float, now: float) -> None:
    bucket = TokenBucket(rate, 1.0, now=now)
    assert bucket.try_take(now) == 0
    wait = bucket.try_take(now)
    assert wait == pytest.approx(1 / rate)
    assert bucket.try_take(now + wait * 0.99) > 0
    assert bucket.try_take(now + wait * 1.0001) == 0


async def test_rate_limiter_is_smooth_and_fair_under_contention() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, burst=1.0, clock=clock, sleep=clock.sleep)  # one every 0.5 s
    start = clock.now
    order: list[int] = []
    granted_at: list[float] = []

    async def worker(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        granted_at.append(clock.now - start)

    async with asyncio.TaskGroup() as tg:
        for i in range(20):
            tg.create_task(worker(i))
    assert order == list(range(20))  # FIFO
    gaps = [b - a for a, b in zip(granted_at, granted_at[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-9  # no bursts beyond the bucket
    assert granted_at[-1] == pytest.approx(19 * 0.5)  # and no slower than the rate
    assert limiter.recent_per_minute() == 20


async def test_rate_limiter_rate_change_applies_to_the_next_grant() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    limiter.set_rate(6)  # one per 10 s
    before = clock.now
    await limiter.acquire()
    assert clock.now - before == pytest.approx(10.0)
    limiter.set_rate(math.inf)
    before = clock.now
    for _ in range(100):
        await limiter.acquire()
    assert clock.now == before


def test_recent_per_minute_forgets_old_grants() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6000, burst=10, clock=clock)
    for _ in range(10):
        assert limiter.try_acquire() == 0
    clock.now += 30
    assert limiter.recent_per_minute() == 10
    clock.now += 31
    assert limiter.recent_per_minute() == 0
    assert limiter.granted == 10
