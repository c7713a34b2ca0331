"""The throughput probe on synthetic throughput curves: where it settles, when it backs off."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulkmover.execution.limits import ProbeSettings, ThroughputProbe


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
