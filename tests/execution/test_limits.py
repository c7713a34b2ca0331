"""Rate limiter, concurrency gate, AIMD limits and throughput probe as pure units (fake clock)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulkmover.execution.limits import (
    AdaptiveLimits,
    ConcurrencyGate,
    LimitSettings,
    ProbeSettings,
    RateLimiter,
    ThroughputProbe,
    TokenBucket,
)


class FakeClock:
    """A clock the test moves; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


# -- token bucket ----------------------------------------------------------------------------


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


# -- concurrency gate ------------------------------------------------------------------------


async def test_gate_caps_holders_and_follows_limit_changes() -> None:
    gate = ConcurrencyGate(2)
    peak = 0
    release = asyncio.Event()

    async def hold() -> None:
        nonlocal peak
        async with gate:
            peak = max(peak, gate.in_use)
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(5)]
    await asyncio.sleep(0)
    assert (gate.in_use, gate.waiting) == (2, 3)
    gate.set_limit(4)  # raising wakes waiters at once
    await asyncio.sleep(0)
    assert (gate.in_use, gate.waiting) == (4, 1)
    gate.set_limit(1)  # lowering never interrupts holders
    assert gate.in_use == 4
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 4 and gate.in_use == 0
    # After the drain, only one at a time.
    assert gate.try_acquire() and not gate.try_acquire()
    gate.release()


async def test_gate_cancelled_waiter_leaks_no_slot() -> None:
    gate = ConcurrencyGate(1)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release()
    assert gate.in_use == 0 and gate.waiting == 0
    assert gate.try_acquire()


async def test_gate_granted_then_cancelled_hands_the_slot_on() -> None:
    gate = ConcurrencyGate(1)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    second = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # grants `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert gate.in_use == 1


def test_gate_occupy_counts_resumed_operations_above_the_limit() -> None:
    gate = ConcurrencyGate(2)
    for _ in range(3):
        gate.occupy()
    assert gate.in_use == 3 and not gate.try_acquire()
    with pytest.raises(RuntimeError):
        ConcurrencyGate(1).release()


# -- AIMD ------------------------------------------------------------------------------------


def make_limits(clock: FakeClock, **overrides: object) -> AdaptiveLimits:
    base: dict[str, object] = {
        "max_concurrency": 20,
        "max_rates": {"lro_start": 600.0, "operations": 1200.0},
        "cooldown": 30.0,
        "recovery_interval": 30.0,
        "knee_ttl": 300.0,
    }
    base.update(overrides)
    return AdaptiveLimits(LimitSettings(**base), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_refused_start_cuts_concurrency_once_per_burst_with_a_reason() -> None:
    clock = FakeClock()
    limits = make_limits(clock)
    assert limits.concurrency == 20 and limits.gate.limit == 20
    changes = limits.on_throttled(
        "lro_start", "429 on import start", concurrency=True, in_flight=12
    )
    assert [str(c) for c in changes] == ["concurrency 20 -> 10: 429 on import start"]
    assert limits.gate.limit == 10
    for _ in range(50):  # the rest of the burst
        clock.now += 0.1
        assert limits.on_throttled("lro_start", "429", concurrency=True, in_flight=10) == []
    assert limits.concurrency == 10 and limits.throttled == 51
    assert limits.rate("lro_start") == 600.0  # a refused start is not a rate problem


def test_concurrency_recovers_to_the_knee_holds_then_probes_beyond() -> None:
    clock = FakeClock()
    limits = make_limits(clock)
    limits.on_throttled("lro_start", "429 on import start", concurrency=True, in_flight=12)
    assert limits.concurrency == 10
    clock.now += 29
    assert limits.tick() == []  # not quiet long enough
    clock.now += 1
    (change,) = limits.tick()
    assert (change.old, change.new) == (10, 11)
    clock.now += 30
    assert [c.new for c in limits.tick()] == [12]  # back at the knee (12 were running)
    for _ in range(7):  # hold at the knee until knee_ttl has passed
        clock.now += 30
        assert limits.tick() == []
    clock.now += 30
    (change,) = limits.tick()
    assert change.new == 13 and "probing above" in change.reason
    clock.now += 30
    assert [c.new for c in limits.tick()] == [14]


def test_rate_cut_starts_from_what_was_really_sent() -> None:
    clock = FakeClock()
    limits = make_limits(clock)
    limiter = limits.limiter("operations")
    assert limiter is not None
    for _ in range(100):  # 100 requests in the last minute, though 1200/min was allowed
        clock.now += 0.5
        assert limiter.try_acquire() == 0
    (change,) = limits.on_throttled("operations", "429 on operations.get")
    assert change.family == "operations"
    assert change.new == pytest.approx(85.0)  # 0.85 x 100, not 0.85 x 1200
    assert limiter.requests_per_minute == pytest.approx(85.0)
    assert str(change) == "operations rate 1200 -> 85/min: 429 on operations.get"
    clock.now += 30
    limits.tick()
    assert limits.rate("operations") == pytest.approx(97.0)  # straight back below the knee
    assert limits.rate("lro_start") == 600.0  # other families untouched


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["tick", "rate429", "ops429", "start429"]),
            st.floats(min_value=0.0, max_value=120.0),
            st.integers(min_value=0, max_value=40),
        ),
        max_size=80,
    )
)
def test_aimd_stays_within_bounds(events: list[tuple[str, float, int]]) -> None:
    clock = FakeClock()
    limits = make_limits(clock, min_concurrency=2, min_rate=6.0)
    for kind, advance, in_flight in events:
        clock.now += advance
        if kind == "tick":
            limits.tick()
        elif kind == "rate429":
            limits.on_throttled("lro_start", "429")
        elif kind == "ops429":
            limits.on_throttled("operations", "429")
        else:
            limits.on_throttled("lro_start", "429", concurrency=True, in_flight=in_flight)
        assert 2 <= limits.concurrency <= 20
        assert limits.gate.limit == limits.concurrency
        assert 6.0 <= limits.rate("lro_start") <= 600.0
        assert 6.0 <= limits.rate("operations") <= 1200.0
        limiter = limits.limiter("lro_start")
        assert limiter is not None and limiter.requests_per_minute == pytest.approx(
            limits.rate("lro_start")
        )


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        LimitSettings(max_concurrency=0)
    with pytest.raises(ValueError):
        LimitSettings(rate_factor=1.5)


# -- throughput probe ------------------------------------------------------------------------


def simulate(
    probe: ThroughputProbe,
    curve: Callable[[int], float],
    seconds: int,
    in_flight: int | None = None,
) -> list[int]:
    """Feed the probe one sample per second from ``curve(cap) -> instances/s``."""
    processed, now, caps = 0.0, 0.0, []
    for _ in range(seconds):
        now += 1.0
        processed += curve(probe.cap)
        running = probe.cap if in_flight is None else in_flight
        probe.observe(now, int(processed), running)
        caps.append(probe.cap)
    return caps


@settings(max_examples=40, deadline=None)
@given(
    per_operation=st.floats(min_value=0.2, max_value=5.0),
    knee=st.floats(min_value=2.0, max_value=40.0),
)
@example(per_operation=2.0, knee=2.46875)  # once failed a bound stricter than the floor below
def test_probe_converges_to_the_knee_of_min_curve(per_operation: float, knee: float) -> None:
    """y = min(C * s, T): settle at the knee T/s, near T, without piling on operations.

    A raise from c to c+1 pays when it brings at least half of 1/c more, so the probe may stop at
    c = floor(knee) when knee - c < 1/2: it keeps at least c / (c + 1/2) of T (0.92 from c = 6),
    minus the occasional re-probe one step down.
    """
    ceiling = per_operation * knee

    def curve(cap: int) -> float:
        return min(cap * per_operation, ceiling)

    probe = ThroughputProbe(ProbeSettings(maximum=64, window=20, settle=5))
    caps = simulate(probe, curve, 6000)
    tail = caps[len(caps) * 2 // 3 :]
    settled = Counter(tail).most_common(1)[0][0]
    assert settled in (math.floor(knee), math.ceil(knee))
    achieved = sum(curve(c) for c in tail) / len(tail)
    # Below 6 the documented floor c / (c + 1/2) (0.8 at c = 2) is itself the bound, less 3% for
    # the re-probes one step down that land in the measured tail.
    floor = math.floor(knee)
    assert achieved >= (0.9 if knee >= 6 else 0.97 * floor / (floor + 0.5)) * ceiling


def test_probe_backs_away_from_a_contended_store() -> None:
    """Past the knee more operations make the store slower: settle at the knee (10)."""

    def curve(cap: int) -> float:
        return 50.0 * min(cap / 10, 1.0) * (1 - 0.03 * max(0, cap - 10))

    probe = ThroughputProbe(ProbeSettings(maximum=64, initial=40, window=20, settle=5))
    caps = simulate(probe, curve, 6000)
    tail = caps[len(caps) * 2 // 3 :]
    assert 9.5 <= sum(tail) / len(tail) <= 11
    assert probe.cap in (9, 10, 11)


def test_probe_decides_nothing_without_enough_work() -> None:
    probe = ThroughputProbe(ProbeSettings(maximum=64, initial=8, window=20, settle=5))
    caps = simulate(probe, lambda cap: cap * 1.0, 600, in_flight=3)
    assert set(caps) == {8} and probe.measurements == []


def test_probe_backs_off_when_throughput_falls() -> None:
    probe = ThroughputProbe(ProbeSettings(maximum=8, initial=8, window=10, settle=0))
    simulate(probe, lambda cap: 12.5 * cap, 200)  # every operation pays: stays at the maximum
    assert probe.cap == 8
    changes = []
    now, processed = 1000.0, 0
    for _ in range(40):
        now += 1
        processed += 20  # the store got 5x slower
        change = probe.observe(now, processed, probe.cap)
        if change:
            changes.append(change)
    assert changes and changes[0].new < 8
    assert "fell" in changes[0].reason


def test_adaptive_limits_apply_the_probe_cap() -> None:
    clock = FakeClock()
    probe = ThroughputProbe(ProbeSettings(maximum=20, initial=3, window=10, settle=0))
    limits = AdaptiveLimits(LimitSettings(max_concurrency=20), probe=probe, clock=clock)
    assert limits.concurrency == 3 and limits.gate.limit == 3
    processed = 0
    moved = []
    for _ in range(40):
        clock.now += 1
        processed += 2 * limits.concurrency  # linear: every operation pays
        moved += limits.observe_throughput(processed, limits.concurrency)
    assert moved and limits.concurrency > 3
    assert limits.gate.limit == limits.concurrency
    assert all(str(c).startswith("concurrency ") for c in moved)
    assert list(limits.changes) == moved


def test_rate_settles_below_what_the_server_accepts_when_429s_go_on() -> None:
    """A quota's burst allowance hides it from the first cut; 429s that go on after the cut
    reveal it: the rate settles at 0.97 x the rate accepted meanwhile, once per episode."""
    clock = FakeClock()
    limits = AdaptiveLimits(
        LimitSettings(max_rates={"lro_start": 600.0}, settle_after=4.0, cooldown=30.0),
        clock=clock,
        sleep=clock.sleep,
    )
    limiter = limits.limiter("lro_start")
    assert limiter is not None
    for _ in range(600):  # a minute at 600/min, all granted
        limiter.try_acquire()  # counted as sent in the last minute (the first cut's base)
        limits.on_accepted("lro_start")
        clock.now += 0.1
    first = limits.on_throttled("lro_start", "429 on dicomStores.import")
    assert first and first[0].new < 600.0  # the first cut, from what was sent
    # The server accepts 300/min (5/s) for the next 5 s while refusing the rest.
    for _ in range(25):
        limits.on_accepted("lro_start")
        clock.now += 0.2
    settled = limits.on_throttled("lro_start", "429 on dicomStores.import")
    assert settled, "429s past settle_after should settle the rate"
    assert settled[0].new == pytest.approx(0.97 * 300.0, rel=0.02)
    assert "accepts 300/min" in settled[0].reason
    clock.now += 1.0
    assert limits.on_throttled("lro_start", "429 again") == []  # once per episode
    assert limits.rate("lro_start") == settled[0].new
