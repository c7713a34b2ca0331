"""What the board shows, as plain data: built by the executor live, or from the state file."""

from __future__ import annotations

from dataclasses import dataclass, field

from bulkmover.state.coverage import Coverage
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
    coverage: Coverage | None = None  # files left out, gone or drifted (None: not counted)

    @property
    def progress(self) -> tuple[int, int]:
        """(settled, total): files with an outcome when the ledger is counted, else the
        operations' counters, never past the total (a drifted shard counts more than planned)."""
        if self.files is not None and self.files.files:
            f = self.files
            return f.files - f.pending, f.files
        t = self.totals
        return min(t.processed, t.expected), t.expected

    @property
    def eta_seconds(self) -> float | None:
        remaining = max(self.totals.expected - self.totals.processed, 0)
        if remaining == 0:
            return 0.0
        if self.throughput <= 0:
            return None
        return remaining / self.throughput
