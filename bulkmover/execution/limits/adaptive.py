"""The executor's limits, adapted as it runs: AIMD on the concurrency cap and on each quota rate.

The real quotas are unknown and per project, so it starts from configured maximums and moves
from what the server says: 429s cut (the concurrency cap from the operations that were running
when a start was refused, a rate from what was really sent in the last minute), quiet periods
recover, and a throughput probe may hold the cap lower where more operations stop paying.
Every move is a ``LimitChange`` handed to the listeners, and a rate move retunes its limiter.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bulkmover.execution.limits.aimd import Aimd, Episode
from bulkmover.execution.limits.changes import LimitChange
from bulkmover.execution.limits.gate import ConcurrencyGate
from bulkmover.execution.limits.probe import ThroughputProbe
from bulkmover.execution.limits.rate import MINUTE, UNLIMITED, Clock, RateLimiter, Sleep


@dataclass(frozen=True)
class LimitSettings:
    """Configured maximums and how the adaptive limits move (defaults safe for the real API).

    ``max_rates`` is requests per minute per quota family (a family not listed is unlimited).
    Concurrency cuts to ``concurrency_factor`` x the operations that were running when a start was
    refused; rates cut to ``rate_factor`` x the requests granted in the minute before the 429.
    """

    max_concurrency: int = 10
    min_concurrency: int = 1
    initial_concurrency: int | None = None  # None: start at max_concurrency
    max_rates: Mapping[str, float] = field(default_factory=dict)
    min_rate: float = 6.0
    burst: float = 2.0  # a second token absorbs timer lateness (1.0 loses ~3% at 100/s)
    concurrency_factor: float = 0.9
    rate_factor: float = 0.85
    cooldown: float = 30.0
    recovery_interval: float = 30.0
    concurrency_step: int = 1
    rate_step_fraction: float = 0.05  # of the maximum rate, per recovery interval
    rate_knee_margin: float = 0.97
    knee_ttl: float = 300.0
    # A rate cut starts from what was sent in the last minute, which a quota's burst allowance
    # may have let through at well above its rate. If 429s go on this long after the cut, the
    # rate the server accepted meanwhile is its real one: settle just below it at once.
    settle_after: float = 4.0

    def __post_init__(self) -> None:
        if self.min_concurrency < 1 or self.max_concurrency < self.min_concurrency:
            raise ValueError("need 1 <= min_concurrency <= max_concurrency")
        if not 0 < self.concurrency_factor <= 1 or not 0 < self.rate_factor <= 1:
            raise ValueError("decrease factors must be in (0, 1]")


class AdaptiveLimits:
    """The executor's current operations-in-flight cap and request rates, adapted as it runs.

    Wire it up: ``HealthcareClient(before_request=limits.acquire_request, ...)``; on a 429 call
    ``on_throttled``; call ``tick()`` about once a second (recovery, probe); start operations
    under ``limits.gate``. ``changes`` keeps the recent ``LimitChange``s for the board.
    """

    def __init__(
        self,
        settings: LimitSettings,
        *,
        probe: ThroughputProbe | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        history: int = 50,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.probe = probe
        start = settings.initial_concurrency or settings.max_concurrency
        self._concurrency = Aimd(
            None,
            value=float(min(max(start, settings.min_concurrency), settings.max_concurrency)),
            minimum=settings.min_concurrency,
            maximum=settings.max_concurrency,
            step=settings.concurrency_step,
            factor=settings.concurrency_factor,
            cooldown=settings.cooldown,
            recovery_interval=settings.recovery_interval,
            knee_margin=1.0,
            knee_ttl=settings.knee_ttl,
            integer=True,
        )
        self._rates: dict[str, Aimd] = {}
        self._limiters: dict[str, RateLimiter] = {}
        for family, rpm in settings.max_rates.items():
            self._rates[family] = Aimd(
                family,
                value=rpm,
                minimum=min(settings.min_rate, rpm),
                maximum=rpm,
                step=max(1.0, rpm * settings.rate_step_fraction),
                factor=settings.rate_factor,
                cooldown=settings.cooldown,
                recovery_interval=settings.recovery_interval,
                knee_margin=settings.rate_knee_margin,
                knee_ttl=settings.knee_ttl,
                integer=False,
            )
            self._limiters[family] = RateLimiter(
                rpm, burst=settings.burst, clock=clock, sleep=sleep
            )
        self.gate = ConcurrencyGate(self.concurrency)
        self.changes: deque[LimitChange] = deque(maxlen=history)
        self.listeners: list[Callable[[LimitChange], None]] = []
        self.throttled = 0
        self._accepted: dict[str, int] = {family: 0 for family in self._rates}
        self._episodes: dict[str, Episode] = {}

    # -- reading ---------------------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """The cap in force: the AIMD value, lowered by the throughput probe if it says so."""
        cap = int(self._concurrency.value)
        if self.probe is not None:
            cap = min(cap, self.probe.cap)
        return max(self.settings.min_concurrency, cap)

    def rate(self, family: str) -> float:
        """Requests per minute allowed for ``family`` now (inf when not limited)."""
        aimd = self._rates.get(family)
        return aimd.value if aimd else UNLIMITED

    def limiter(self, family: str) -> RateLimiter | None:
        return self._limiters.get(family)

    # -- feeding ---------------------------------------------------------------------------

    async def acquire_request(self, family: str) -> None:
        """Wait for the family's rate limiter (the client's ``before_request`` hook)."""
        limiter = self._limiters.get(family)
        if limiter is not None:
            await limiter.acquire()

    def on_throttled(
        self,
        family: str,
        reason: str,
        *,
        concurrency: bool = False,
        in_flight: int | None = None,
        counted: bool = True,
    ) -> list[LimitChange]:
        """A 429 in ``family``: cut that family's rate, from what it really sent in the last
        minute. With ``concurrency=True`` the 429 refused a start because too many operations run:
        cut the concurrency cap instead, from ``in_flight`` (operations running when refused, not
        counting the refused one). Repeats within ``cooldown`` are counted but change nothing;
        ``counted=False`` for the second cut of one 429 that cuts both."""
        now = self._clock()
        self.throttled += int(counted)
        change: LimitChange | None = None
        if concurrency:
            observed = float(in_flight) if in_flight is not None else None
            change = self._concurrency.throttle(now, observed, reason)
        elif (aimd := self._rates.get(family)) is not None:
            granted = float(self._limiters[family].recent_per_minute())
            change = aimd.throttle(now, granted or None, reason)
            if change is not None:
                self._episodes[family] = Episode(now, self._accepted[family])
            else:
                change = self._settle(family, aimd, now)
        return self._apply([change] if change else [])

    def on_accepted(self, family: str) -> None:
        """A request of ``family`` got past the quota (any answer but 429)."""
        if family in self._accepted:
            self._accepted[family] += 1

    def _settle(self, family: str, aimd: Aimd, now: float) -> LimitChange | None:
        """Once per throttling episode, ``settle_after`` seconds into it: what got accepted since
        the cut, while 429s said we still sent too much, is the server's rate."""
        episode = self._episodes.get(family)
        if episode is None or episode.settled or now - episode.start < self.settings.settle_after:
            return None
        episode.settled = True
        accepted = self._accepted[family] - episode.accepted
        if accepted <= 0:
            return None
        measured = accepted / (now - episode.start) * MINUTE
        return aimd.settle(now, measured, f"429s go on; the server accepts {measured:.0f}/min")

    def observe_throughput(self, processed: int, in_flight: int) -> list[LimitChange]:
        """Feed the probe one sample: instances processed so far (all operations of the store,
        finished and running) and operations running now."""
        if self.probe is None:
            return []
        change = self.probe.observe(self._clock(), processed, in_flight)
        return self._apply([change] if change else [])

    def tick(self) -> list[LimitChange]:
        """Additive recovery where quiet long enough; call about once a second."""
        now = self._clock()
        changes = [self._concurrency.recover(now)]
        changes.extend(aimd.recover(now) for aimd in self._rates.values())
        return self._apply([c for c in changes if c is not None])

    def _apply(self, changes: list[LimitChange]) -> list[LimitChange]:
        for change in changes:
            if change.family is not None:
                self._limiters[change.family].set_rate(change.new)
            self.changes.append(change)
            for listener in self.listeners:
                listener(change)
        self.gate.set_limit(self.concurrency)
        return changes
