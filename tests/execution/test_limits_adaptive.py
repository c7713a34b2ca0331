"""AIMD on the concurrency cap and the rates, settling, the probe's cap applied (fake clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_limits_rate import FakeClock

from bulkmover.execution.limits import AdaptiveLimits, LimitSettings, ProbeSettings, ThroughputProbe


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
