"""What ``bulkmover plan`` prints: a rich summary, or the ``--json`` document.

The JSON shape is a contract (issue 8): ``{"source", "shards": [{"id", "uri", "objects",
"bytes"}], "totals": {"shards", "objects", "bytes"}}`` and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bulkmover.units import format_bytes

if TYPE_CHECKING:
    from bulkmover.planning.plan import PlanOutcome

BAR_WIDTH = 30


def plan_json(outcome: PlanOutcome) -> dict[str, Any]:
    return {
        "source": outcome.source,
        "shards": [
            {"id": s.id, "uri": s.uri, "objects": s.objects, "bytes": s.bytes}
            for s in outcome.shards
        ],
        "totals": {
            "shards": outcome.totals.shards,
            "objects": outcome.totals.objects,
            "bytes": outcome.totals.bytes,
        },
    }


def size_histogram(counts: list[int]) -> list[tuple[str, int, int]]:
    """Shards by object count in decades: ``(label, shards, objects)`` for each non-empty one."""
    buckets: dict[int, list[int]] = {}
    for n in counts:
        decade = len(str(max(n, 1))) - 1 if n > 1 else -1
        buckets.setdefault(decade, []).append(n)
    rows = []
    for decade in sorted(buckets):
        if decade < 0:
            label = "1"
        else:
            low, high = 10**decade + (decade == 0), 10 ** (decade + 1) - 1
            label = f"{low:,}-{high:,}"
        rows.append((label, len(buckets[decade]), sum(buckets[decade])))
    return rows


def render_summary(outcome: PlanOutcome, console: Console) -> None:
    totals = outcome.totals
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    shards_line = f"{totals.shards:,}"
    if outcome.kept_shards:
        shards_line += f" ({outcome.new_shards:,} new, {outcome.kept_shards:,} kept: they ran)"
    facts.add_row("source", outcome.source)
    facts.add_row("shards", shards_line)
    changes = outcome.kept_changes
    if changes.any:
        facts.add_row(
            "since they ran",
            f"{changes.added:,} file(s) added under kept shards, {changes.replaced:,} replaced"
            f" (flagged changed), {changes.gone:,} gone (out of the plan);"
            f" {changes.children:,} child shard(s) import the added and replaced files",
        )
    facts.add_row("objects", f"{totals.objects:,}")
    facts.add_row("bytes", f"{format_bytes(totals.bytes)} ({totals.bytes:,})")
    if outcome.shards:
        largest = max(outcome.shards, key=lambda s: (s.objects, s.bytes))
        facts.add_row(
            "largest shard",
            f"{largest.uri}  {largest.objects:,} objects, {format_bytes(largest.bytes)}",
        )
    limits = outcome.limits
    facts.add_row(
        "limits", f"{limits.max_objects:,} objects, {format_bytes(limits.max_bytes)} per shard"
    )
    rate = outcome.listed_objects / outcome.list_seconds if outcome.list_seconds else 0.0
    facts.add_row(
        "planning time",
        f"{outcome.seconds:.1f}s (listing {outcome.listed_objects:,} objects:"
        f" {outcome.list_seconds:.1f}s, {rate:,.0f}/s)",
    )
    if outcome.match_glob_note:
        facts.add_row("matchGlob", outcome.match_glob_note)
    facts.add_row("state file", str(outcome.state_path))

    histogram = Table(title="shard sizes", title_justify="left", box=None, padding=(0, 1))
    histogram.add_column("objects per shard", justify="right")
    histogram.add_column("shards", justify="right")
    histogram.add_column("")
    histogram.add_column("objects", justify="right")
    rows = size_histogram([s.objects for s in outcome.shards])
    widest = max((n for _, n, _ in rows), default=1)
    for label, shards, objects in rows:
        bar = "█" * max(1, round(BAR_WIDTH * shards / widest))
        histogram.add_row(label, f"{shards:,}", Text(bar, style="cyan"), f"{objects:,}")

    parts: list[Any] = [facts, Text(""), histogram]
    if outcome.unplanned:
        count = len(outcome.unplanned)
        sample = ", ".join(outcome.unplanned[:3])
        parts.append(
            Text(
                f"\n{count:,} matched object(s) left unplanned (no URI can address them"
                f" alone): {sample}{', ...' if count > 3 else ''}",
                style="yellow",
            )
        )
    console.print(Group(*parts))
