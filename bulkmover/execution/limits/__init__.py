"""How fast and how wide the executor may go: rate limiters, a resizable gate, adaptive limits.

The real quotas are unknown and per project, so the executor starts from configured maximums and
adapts. One module per concept:

- ``rate``: ``RateLimiter``, a token bucket per quota family (requests per minute).
- ``gate``: ``ConcurrencyGate``, a semaphore whose limit can change at run time.
- ``aimd``: one adaptive value (cut on 429s, recover when quiet, remember the knee).
- ``adaptive``: ``AdaptiveLimits``, AIMD on the gate and on every family's rate.
- ``probe``: ``ThroughputProbe``, hill climbing on the store's throughput.
- ``changes``: ``LimitChange``, every move of a limit, as the board shows it.

Everything takes an injected clock (``time.monotonic`` by default) and the decision logic is pure,
so the tests drive it with a fake clock and never sleep.
"""

from bulkmover.execution.limits.adaptive import AdaptiveLimits, LimitSettings
from bulkmover.execution.limits.changes import LimitChange
from bulkmover.execution.limits.gate import ConcurrencyGate
from bulkmover.execution.limits.probe import ProbeSettings, ThroughputProbe
from bulkmover.execution.limits.rate import (
    MINUTE,
    UNLIMITED,
    Clock,
    RateLimiter,
    Sleep,
    TokenBucket,
)

__all__ = [
    "MINUTE",
    "UNLIMITED",
    "AdaptiveLimits",
    "Clock",
    "ConcurrencyGate",
    "LimitChange",
    "LimitSettings",
    "ProbeSettings",
    "RateLimiter",
    "Sleep",
    "ThroughputProbe",
    "TokenBucket",
]
