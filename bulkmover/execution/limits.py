"""How fast and how wide the executor may go: rate limiters, a resizable gate, adaptive limits.

The real quotas are unknown and per project, so the executor starts from configured maximums and
adapts:

- ``RateLimiter``: a token bucket per quota family (requests per minute, smooth: at most ``burst``
  requests at once, then one every ``60 / rpm`` seconds). FIFO-fair, cancellation-safe.
- ``ConcurrencyGate``: a semaphore whose limit can change at run time (operations in flight).
- ``AdaptiveLimits``: AIMD on both. A 429 (or a start refused because too many operations run)
  cuts the value multiplicatively, at most once per ``cooldown`` so one burst of 429s counts once,
  and remembers where it hurt (the "knee"); quiet periods raise it again, quickly back up to just
  below the knee, then hold there for ``knee_ttl`` before probing beyond it. When a rate's 429s go
  on ``settle_after`` seconds past its cut, the rate the server accepted meanwhile is its quota:
  the rate settles just below it at once (a quota's burst allowance hides it from the first cut).
- ``ThroughputProbe``: hill climbing on the store's aggregate instances per second, for stores
  where more operations stop paying long before any quota says no.

Everything takes an injected clock (``time.monotonic`` by default) and the decision logic is pure,
so the tests drive it with a fake clock and never sleep. Every change is a ``LimitChange`` whose
``str`` is the line the board shows: ``concurrency 20 -> 10: 429 on import start``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

UNLIMITED = math.inf
MINUTE = 60.0


@dataclass(frozen=True)
class LimitChange:
    """One move of a limit, kept for the board and the event log."""

    at: float  # clock time
    family: str | None  # None: the concurrency cap; else the quota family whose rate moved
    old: float
    new: float
    reason: str

    @property
    def limit(self) -> str:
        return "concurrency" if self.family is None else f"{self.family} rate"

    def __str__(self) -> str:
        unit = "" if self.family is None else "/min"
        return f"{self.limit} {_fmt(self.old)} -> {_fmt(self.new)}{unit}: {self.reason}"


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "unlimited"
    return str(int(value)) if value == int(value) else f"{value:.1f}"


# -- rate ------------------------------------------------------------------------------------


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


# -- concurrency -----------------------------------------------------------------------------


class ConcurrencyGate:
    """A semaphore whose limit can change while tasks wait (operations in flight).

    Lowering the limit never interrupts holders: new acquisitions wait until enough slots are
    released. ``occupy()`` takes a slot regardless of the limit, for operations found still
    running on resume (they count against the cap whether we like it or not).

        async with gate:
            ...  # one operation in flight
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def set_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._wake()

    def occupy(self) -> None:
        """Take a slot now, even above the limit."""
        self._in_use += 1

    def try_acquire(self) -> bool:
        if self._in_use < self._limit and not self.waiting:
            self._in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted and cancelled in the same tick: hand the slot on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        if self._in_use <= 0:
            raise RuntimeError("ConcurrencyGate released more often than acquired")
        self._in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_use < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)

    async def __aenter__(self) -> ConcurrencyGate:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# -- AIMD ------------------------------------------------------------------------------------


@dataclass
class _Aimd:
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
                return self._set(
                    now,
                    new,
                    f"no 429 for {self.recovery_interval:.0f} s, back toward {_fmt(target)}",
                )
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
class _Episode:
    """A rate cut and the 429s that follow it: when, and the acceptances counted then."""

    start: float
    accepted: int
    settled: bool = False


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
        self._concurrency = _Aimd(
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
        self._rates: dict[str, _Aimd] = {}
        self._limiters: dict[str, RateLimiter] = {}
        for family, rpm in settings.max_rates.items():
            self._rates[family] = _Aimd(
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
        self._episodes: dict[str, _Episode] = {}

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
    ) -> list[LimitChange]:
        """A 429 in ``family``: cut that family's rate, from what it really sent in the last
        minute. With ``concurrency=True`` the 429 refused a start because too many operations run:
        cut the concurrency cap instead, from ``in_flight`` (operations running when refused, not
        counting the refused one). Repeats within ``cooldown`` are counted but change nothing."""
        now = self._clock()
        self.throttled += 1
        change: LimitChange | None = None
        if concurrency:
            observed = float(in_flight) if in_flight is not None else None
            change = self._concurrency.throttle(now, observed, reason)
        elif (aimd := self._rates.get(family)) is not None:
            granted = float(self._limiters[family].recent_per_minute())
            change = aimd.throttle(now, granted or None, reason)
            if change is not None:
                self._episodes[family] = _Episode(now, self._accepted[family])
            else:
                change = self._settle(family, aimd, now)
        return self._apply([change] if change else [])

    def on_accepted(self, family: str) -> None:
        """A request of ``family`` got past the quota (any answer but 429)."""
        if family in self._accepted:
            self._accepted[family] += 1

    def _settle(self, family: str, aimd: _Aimd, now: float) -> LimitChange | None:
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


# -- throughput probe ------------------------------------------------------------------------


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
        s = self.settings
        trial = self._trial
        if trial is None:
            if self.reference is None:  # first window at this cap
                self.reference = y
                if self._hold > 0:  # after backing off: settle here first
                    return None
                reason = f"{y:.1f}/s at {self.cap}, trying more"
                return self._try(now, self.cap + self._step, self.cap, y, reason)
            if y < self.reference * (1 - s.fall_threshold) and self.cap > s.minimum:
                fallen_from, self.reference = self.reference, None
                self._hold = s.hold_windows
                return self._move(
                    now,
                    self.cap - self._climb_step(self.cap),
                    f"throughput fell {fallen_from:.1f} -> {y:.1f}/s, backing off",
                )
            self.reference = (self.reference + y) / 2
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
        # Measuring a trial cap against its origin.
        self._trial = None
        origin, y0 = trial.origin, trial.origin_throughput
        relative_cap = (self.cap - origin) / origin
        gain = (y - y0) / y0 if y0 > 0 else (math.inf if y > 0 else 0.0)
        tag = f"{y0:.1f} -> {y:.1f}/s for {origin} -> {self.cap}"
        if self.cap > origin:
            if gain >= s.min_efficiency * relative_cap and gain > 0:
                self.reference = y
                self._step = self._climb_step(self.cap)
                if self.cap >= s.maximum:
                    self._hold = s.hold_windows
                    return None
                return self._try(
                    now, self.cap + self._step, self.cap, y, f"{tag} pays, trying more"
                )
            step = self.cap - origin
            if step > 1:  # overshot: try half the step from the origin
                self._step = step // 2
                return self._try(
                    now, origin + self._step, origin, y0, f"{tag} does not pay, smaller step"
                )
            self.reference, self._hold = y0, s.hold_windows
            return self._move(now, origin, f"{tag} does not pay")
        # A step down: keep it if the operations removed were not pulling their weight.
        loss = -gain
        if loss < s.min_efficiency * (-relative_cap):
            self.reference, self._hold = y, s.hold_windows
            if self.cap > s.minimum:  # fewer operations cost nothing: try fewer still
                return self._try(
                    now, self.cap - 1, self.cap, y, f"{tag} costs nothing, trying fewer"
                )
            return None
        self.reference, self._hold = y0, s.hold_windows
        return self._move(now, origin, f"{tag} costs too much, back up")
