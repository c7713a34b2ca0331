"""One adaptive limit: AIMD (additive increase, multiplicative decrease) with a memory.

A 429 (or a start refused because too many operations run) cuts the value multiplicatively, at
most once per ``cooldown`` so one burst of 429s counts once, and remembers where it hurt (the
"knee"); quiet periods raise it again, quickly back up to just below the knee, then hold there
for ``knee_ttl`` before probing beyond it. When a rate's 429s go on ``settle_after`` seconds past
its cut, the rate the server accepted meanwhile is its quota: the rate settles just below it at
once (a quota's burst allowance hides it from the first cut). ``Episode`` tracks that window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bulkmover.execution.limits.changes import LimitChange, format_limit


@dataclass
class Aimd:
    """One adaptive value: multiplicative decrease on throttling, additive recovery, knee memory."""

    family: str | None
    value: float
    minimum: float
    maximum: float
    step: float
    factor: float
    cooldown: float
    recovery_interval: float
    knee_margin: float
    knee_ttl: float
    integer: bool
    knee: float | None = None
    knee_at: float = -math.inf
    last_decrease: float = -math.inf
    last_change: float = -math.inf
    last_throttle: float = -math.inf

    def _round(self, value: float) -> float:
        value = min(self.maximum, max(self.minimum, value))
        return float(math.floor(value)) if self.integer and not math.isinf(value) else value

    def throttle(self, now: float, observed: float | None, reason: str) -> LimitChange | None:
        """A 429 was seen. ``observed`` is what the server accepted just before (if known)."""
        self.last_throttle = now
        if now - self.last_decrease < self.cooldown:
            return None  # same burst: already acted on it
        base = self.value if observed is None else min(self.value, max(observed, self.minimum))
        if math.isinf(base):
            return None  # unlimited and nothing observed: nothing to cut from
        self.knee, self.knee_at = base, now
        new = self._round(base * self.factor)
        self.last_decrease = now
        return self._set(now, new, reason)

    def settle(self, now: float, measured: float, reason: str) -> LimitChange | None:
        """429s went on after a cut: ``measured`` is what the server accepted meanwhile, its
        real limit. Go just below it (never up) and remember it as the knee."""
        new = self._round(measured * self.knee_margin)
        if new >= self.value:
            return None
        self.knee, self.knee_at = measured, now
        self.last_decrease = now
        return self._set(now, new, reason)

    def recover(self, now: float) -> LimitChange | None:
        if now - max(self.last_change, self.last_throttle) < self.recovery_interval:
            return None
        if self.value >= self.maximum:
            return None
        if self.knee is not None:
            target = self._round(self.knee * self.knee_margin)
            if self.value < target:
                new = self._round(
                    min(target, self.value + max(self.step, (target - self.value) / 2))
                )
                back = f"back toward {format_limit(target)}"
                return self._set(now, new, f"no 429 for {self.recovery_interval:.0f} s, {back}")
            if now - self.knee_at < self.knee_ttl:
                return None  # hold just below the knee for a while
            self.knee = None
            reason = f"no 429 for {now - self.last_throttle:.0f} s, probing above the last limit"
        else:
            reason = f"no 429 for {self.recovery_interval:.0f} s"
        return self._set(now, self._round(self.value + self.step), reason)

    def _set(self, now: float, new: float, reason: str) -> LimitChange | None:
        old, self.value = self.value, new
        self.last_change = now
        if new == old:
            return None
        return LimitChange(now, self.family, old, new, reason)


@dataclass
class Episode:
    """A rate cut and the 429s that follow it: when, and the acceptances counted then."""

    start: float
    accepted: int
    settled: bool = False
