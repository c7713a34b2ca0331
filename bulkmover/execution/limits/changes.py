"""``LimitChange``: the one record of a limit's move, shared by the AIMD values and the probe.

Its ``str`` is the line the board shows and the event log keeps, so both read the same:
``concurrency 20 -> 10: 429 on import start``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
        old, new = format_limit(self.old), format_limit(self.new)
        return f"{self.limit} {old} -> {new}{unit}: {self.reason}"


def format_limit(value: float) -> str:
    """A limit as people read it: whole numbers bare, ``inf`` as ``unlimited``."""
    if math.isinf(value):
        return "unlimited"
    return str(int(value)) if value == int(value) else f"{value:.1f}"
