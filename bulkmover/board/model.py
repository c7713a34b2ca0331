"""What the board shows, as plain data: built by the executor live, or from the state file."""

from __future__ import annotations

from dataclasses import dataclass, field

from bulkmover.state.files import OutcomeTotals
from bulkmover.state.runs import RunTotals


@dataclass(frozen=True)
class InFlight:
    shard_id: int
    uri: str
    operation: str | None
    age_seconds: float
    success: int
    failure: int
    expected: int


@dataclass(frozen=True)
class Snapshot:
    """One frame of the board; ``totals`` are the state file's, as the executor and ``status``
    both read them."""

    totals: RunTotals
    in_flight: list[InFlight] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    throughput: float = 0.0  # instances per second over a recent window
    concurrency: int | None = None
    concurrency_max: int | None = None
    rate_per_minute: float | None = None
    rate_max: float | None = None
    limit_changes: list[str] = field(default_factory=list)
    throttled: int = 0  # 429 answers seen
    last_errors: list[str] = field(default_factory=list)
    finished: bool = False
    files: OutcomeTotals | None = None  # per-file outcomes (None: not counted)
    settling: int = 0  # shards whose files are still being settled (logs read, narrowed)
    trouble: str | None = None  # API calls failing: what fails, since when

    @property
    def eta_seconds(self) -> float | None:
        remaining = max(self.totals.expected - self.totals.processed, 0)
        if remaining == 0:
            return 0.0
        if self.throughput <= 0:
            return None
        return remaining / self.throughput
