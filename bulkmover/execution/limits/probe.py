"""Hill climbing on the store's aggregate instances per second, for the concurrency cap.

Some stores stop gaining from more operations long before any quota says no: past that point
extra operations only contend. No 429 ever tells AIMD so, so the probe measures throughput per
window at each cap and keeps a raise only while it pays. Pure: it sees (time, counter) samples
and returns ``LimitChange``s; ``AdaptiveLimits`` applies its cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bulkmover.execution.limits.changes import LimitChange


@dataclass(frozen=True)
class ProbeSettings:
    """Hill-climbing parameters.

    A raise "pays" when throughput grows by at least ``min_efficiency`` times the relative
    growth of the cap (from 8 to 10 operations, +25%: it pays at +12.5% or more with 0.5).
    A lowered cap is kept when it costs less than that. Windows where fewer than ``saturation`` x
    cap operations ran (not enough work, or another limit binding) decide nothing.
    """

    maximum: int
    minimum: int = 1
    initial: int = 2
    window: float = 60.0  # seconds measured per decision
    settle: float = 10.0  # seconds ignored after each change (operations ramp up)
    step_fraction: float = 0.25  # raise by ceil(cap * step_fraction) while it pays
    min_efficiency: float = 0.5
    fall_threshold: float = 0.3  # throughput this far below the reference: back off a step
    hold_windows: int = 5  # windows at a settled cap before probing again
    saturation: float = 0.9


@dataclass(frozen=True)
class _Trial:
    origin: int  # the cap we came from
    origin_throughput: float  # measured there


class ThroughputProbe:
    """Find the concurrency where adding operations stops paying, from (time, counter) samples.

    Climbs in steps of ``ceil(cap * step_fraction)`` while each raise pays, halves the step when
    one does not (down to 1), settles, then every ``hold_windows`` windows tries one step up and,
    the next time, one step down, keeping whichever pays. A sudden fall of throughput at the
    settled cap backs off one step. Pure: feed it ``observe(now, processed, in_flight)``.
    """

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.cap = min(settings.maximum, max(settings.minimum, settings.initial))
        self.reference: float | None = None  # throughput measured at the settled cap
        self._trial: _Trial | None = None
        self._step = self._climb_step(self.cap)
        self._hold = 0
        self._next_probe_up = True
        self._changed_at: float | None = None
        self._window_start: tuple[float, int] | None = None
        self._samples = 0
        self._saturated = 0
        self.measurements: list[tuple[int, float]] = []  # (cap, throughput) per window

    def _climb_step(self, cap: int) -> int:
        return max(1, math.ceil(cap * self.settings.step_fraction))

    def observe(self, now: float, processed: int, in_flight: int) -> LimitChange | None:
        s = self.settings
        if self._changed_at is None:
            self._changed_at = now
        if now - self._changed_at < s.settle:
            return None
        if self._window_start is None:
            self._window_start = (now, processed)
            self._samples = self._saturated = 0
        self._samples += 1
        if in_flight >= s.saturation * self.cap:
            self._saturated += 1
        start_time, start_count = self._window_start
        if now - start_time < s.window:
            return None
        throughput = max(0.0, (processed - start_count) / (now - start_time))
        saturated = self._saturated >= 0.8 * self._samples
        self._window_start = (now, processed)
        self._samples = self._saturated = 0
        if not saturated:
            return None
        self.measurements.append((self.cap, throughput))
        return self._decide(now, throughput)

    def _move(self, now: float, new: int, reason: str) -> LimitChange | None:
        new = min(self.settings.maximum, max(self.settings.minimum, new))
        if new == self.cap:
            return None
        old, self.cap = self.cap, new
        self._changed_at = now
        self._window_start = None
        return LimitChange(now, None, old, new, f"throughput probe: {reason}")

    def _try(
        self, now: float, new: int, origin: int, origin_throughput: float, reason: str
    ) -> LimitChange | None:
        """Move to ``new`` and judge it next window against ``origin``'s throughput."""
        change = self._move(now, new, reason)
        if change is not None:
            self._trial = _Trial(origin, origin_throughput)
        return change

    def _decide(self, now: float, y: float) -> LimitChange | None:
        """One saturated window measured ``y`` instances/s at ``self.cap``."""
        trial = self._trial
        if trial is not None:
            self._trial = None
            if self.cap > trial.origin:
                return self._judge_raise(now, y, trial)
            return self._judge_step_down(now, y, trial)
        if self.reference is None:
            return self._first_window(now, y)
        return self._at_settled_cap(now, y, self.reference)

    def _first_window(self, now: float, y: float) -> LimitChange | None:
        """The first measurement at this cap is its reference; climb from it unless holding."""
        self.reference = y
        if self._hold > 0:  # after backing off: settle here first
            return None
        reason = f"{y:.1f}/s at {self.cap}, trying more"
        return self._try(now, self.cap + self._step, self.cap, y, reason)

    def _at_settled_cap(self, now: float, y: float, reference: float) -> LimitChange | None:
        """Back off on a sudden fall; else average it in and, every ``hold_windows``, re-probe."""
        s = self.settings
        if y < reference * (1 - s.fall_threshold) and self.cap > s.minimum:
            self.reference = None
            self._hold = s.hold_windows
            return self._move(
                now,
                self.cap - self._climb_step(self.cap),
                f"throughput fell {reference:.1f} -> {y:.1f}/s, backing off",
            )
        self.reference = (reference + y) / 2
        self._hold -= 1
        if self._hold > 0:
            return None
        self._hold = s.hold_windows
        up, self._next_probe_up = self._next_probe_up, not self._next_probe_up
        self._step = 1
        target = self.cap + 1 if up else self.cap - 1
        return self._try(
            now, target, self.cap, self.reference, f"re-probing {'up' if up else 'down'}"
        )

    def _compare(self, y: float, trial: _Trial) -> tuple[float, float, str]:
        """The trial cap against its origin: relative cap change, relative gain, a tag for
        reasons."""
        origin, y0 = trial.origin, trial.origin_throughput
        relative_cap = (self.cap - origin) / origin
        gain = (y - y0) / y0 if y0 > 0 else (math.inf if y > 0 else 0.0)
        return relative_cap, gain, f"{y0:.1f} -> {y:.1f}/s for {origin} -> {self.cap}"

    def _judge_raise(self, now: float, y: float, trial: _Trial) -> LimitChange | None:
        """Climb on while raises pay; on one that does not, halve the step, then give up."""
        s = self.settings
        origin, y0 = trial.origin, trial.origin_throughput
        relative_cap, gain, tag = self._compare(y, trial)
        if gain >= s.min_efficiency * relative_cap and gain > 0:
            self.reference = y
            self._step = self._climb_step(self.cap)
            if self.cap >= s.maximum:
                self._hold = s.hold_windows
                return None
            return self._try(now, self.cap + self._step, self.cap, y, f"{tag} pays, trying more")
        step = self.cap - origin
        if step > 1:  # overshot: try half the step from the origin
            self._step = step // 2
            return self._try(
                now, origin + self._step, origin, y0, f"{tag} does not pay, smaller step"
            )
        self.reference, self._hold = y0, s.hold_windows
        return self._move(now, origin, f"{tag} does not pay")

    def _judge_step_down(self, now: float, y: float, trial: _Trial) -> LimitChange | None:
        """Keep a step down if the operations removed were not pulling their weight."""
        s = self.settings
        relative_cap, gain, tag = self._compare(y, trial)
        loss = -gain
        if loss < s.min_efficiency * (-relative_cap):
            self.reference, self._hold = y, s.hold_windows
            if self.cap > s.minimum:  # fewer operations cost nothing: try fewer still
                return self._try(
                    now, self.cap - 1, self.cap, y, f"{tag} costs nothing, trying fewer"
                )
            return None
        self.reference, self._hold = trial.origin_throughput, s.hold_windows
        return self._move(now, trial.origin, f"{tag} costs too much, back up")
