"""The live listing view and the summary: read-only renderings of the planner's counters."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from bulkmover.gcs.listing import ListingStats
from bulkmover.planning.plan import PlanOutcome
from bulkmover.planning.progress import LiveProgress
from bulkmover.planning.sharding import Limits
from bulkmover.planning.summary import plan_json, render_summary, size_histogram
from bulkmover.state import PlanTotals, Shard, ShardState
from bulkmover.units import format_bytes


def test_progress_line_shows_the_counters() -> None:
    stats = ListingStats("gs://b0b/a/**.dcm", seen=12_345, matched=12_000, matched_bytes=3 * 2**30)
    stats.pieces_active, stats.pieces_queued, stats.pieces_done, stats.pages = 7, 2, 30, 40
    console = Console(file=io.StringIO(), width=200)
    progress = LiveProgress(console)
    line = progress.render(stats).plain
    for text in ("gs://b0b/a/**.dcm", "12,345 seen", "12,000 matched", "3.0 GiB", "7 listing"):
        assert text in line
    with progress.listing(stats), progress.phase("sharding"):
        stats.seen += 1


def test_sizes_and_histogram() -> None:
    assert [format_bytes(n) for n in (0, 1536, 5 * 2**30)] == ["0 B", "1.5 KiB", "5.0 GiB"]
    assert size_histogram([1, 1, 5, 40, 4999]) == [
        ("1", 2, 2),
        ("2-9", 1, 5),
        ("10-99", 1, 40),
        ("1,000-9,999", 1, 4999),
    ]


def test_summary_and_json(tmp_path: Path) -> None:
    shards = [
        Shard(1, "gs://b0b/a/x/**.dcm", 3, 300, ShardState.PENDING, "a/x/", 1),
        Shard(2, "gs://b0b/a/*.dcm", 1, 10, ShardState.DONE, "a/", 1),
    ]
    outcome = PlanOutcome(
        source="gs://b0b/a/**.dcm",
        state_path=tmp_path / "s.db",
        shards=shards,
        totals=PlanTotals(2, 4, 310),
        new_shards=1,
        kept_shards=1,
        listed_objects=9,
        unplanned=["a/q*.dcm"],
        list_seconds=0.5,
        seconds=0.75,
        limits=Limits(3, 1000),
    )
    assert plan_json(outcome) == {
        "source": "gs://b0b/a/**.dcm",
        "shards": [
            {"id": 1, "uri": "gs://b0b/a/x/**.dcm", "objects": 3, "bytes": 300},
            {"id": 2, "uri": "gs://b0b/a/*.dcm", "objects": 1, "bytes": 10},
        ],
        "totals": {"shards": 2, "objects": 4, "bytes": 310},
    }
    out = io.StringIO()
    render_summary(outcome, Console(file=out, width=120))
    text = out.getvalue()
    for words in ("2 (1 new, 1 kept", "largest shard", "gs://b0b/a/x/**.dcm", "a/q*.dcm", "0.8s"):
        assert words in text
