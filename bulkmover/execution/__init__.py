"""The executor: runs planned shards as import operations within adaptive limits."""

from bulkmover.execution.limits import (
    AdaptiveLimits,
    ConcurrencyGate,
    LimitChange,
    LimitSettings,
    ProbeSettings,
    RateLimiter,
    ThroughputProbe,
    TokenBucket,
)

__all__ = [
    "AdaptiveLimits",
    "ConcurrencyGate",
    "LimitChange",
    "LimitSettings",
    "ProbeSettings",
    "RateLimiter",
    "ThroughputProbe",
    "TokenBucket",
]
