"""Render a Snapshot: a rich renderable for terminals, one structured log line otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bulkmover.board.model import Snapshot
from bulkmover.units import format_bytes, format_duration

MAX_ROWS = 12


def render(snap: Snapshot, title: str = "bulkmover") -> RenderableType:
    parts: list[RenderableType] = [_head(snap), _progress(snap)]
    if snap.trouble:
        parts.append(Text(snap.trouble, style="bold red", overflow="fold"))
    if snap.in_flight:
        parts.append(_operations(snap))
    parts.extend(_messages(snap))
    return Panel(Group(*parts), title=title, border_style="green" if snap.finished else "blue")


def _head(snap: Snapshot) -> Table:
    """Shards, instances, throughput and limits: one labelled line each."""
    t = snap.totals
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "shards",
        f"{t.done:,} done  [red]{t.failed:,} failed[/]  [cyan]{t.running:,} running[/]  "
        f"{t.pending:,} pending  / {t.shards:,}",
    )
    head.add_row(
        "instances",
        f"[green]{t.success:,} ok[/]  [red]{t.failure:,} failed[/]  / {t.expected:,} expected"
        f"   ({format_bytes(t.bytes_done)} of {format_bytes(t.bytes_expected)})",
    )
    if snap.files is not None:
        f = snap.files
        settling = f"   ({snap.settling:,} shard(s) settling)" if snap.settling else ""
        head.add_row(
            "files",
            f"[green]{f.imported:,} imported[/]  [red]{f.failed:,} failed[/]  "
            f"[yellow]{f.unknown:,} unknown[/]  {f.pending:,} pending{settling}",
        )
    if snap.coverage is not None:
        for note in snap.coverage.notes():
            head.add_row("[yellow]note[/]", Text(note, style="yellow"))
    head.add_row(
        "throughput",
        f"{snap.throughput:,.1f} instances/s   elapsed {format_duration(snap.elapsed_seconds)}"
        f"   ETA {format_duration(snap.eta_seconds)}",
    )
    head.add_row("limits", _limits_line(snap))
    return head


def _limits_line(snap: Snapshot) -> str:
    limits = []
    if snap.concurrency is not None:
        limits.append(f"in flight <= {snap.concurrency} (max {snap.concurrency_max})")
    if snap.rate_per_minute is not None:
        limits.append(f"{snap.rate_per_minute:,.0f}/min (max {snap.rate_max or 0:,.0f})")
    limits.append(f"429s: {snap.throttled:,}")
    return "   ".join(limits)


def _progress(snap: Snapshot) -> Table:
    done, total = snap.progress
    pct = 100.0 * done / total if total else 0.0
    bar = ProgressBar(total=max(total, 1), completed=done)
    progress = Table.grid(padding=(0, 2))
    progress.add_column(style="bold")
    progress.add_column(ratio=1)
    progress.add_column(justify="right")
    progress.add_row("progress", bar, f"{pct:5.1f}%")
    return progress


def _operations(snap: Snapshot) -> Table:
    """The oldest operations in flight first (the ones worth a look), at most ``MAX_ROWS``."""
    ops = Table(title="operations in flight", expand=True, title_justify="left")
    ops.add_column("shard", justify="right")
    ops.add_column("uri", overflow="ellipsis", no_wrap=True, ratio=3)
    ops.add_column("operation", overflow="ellipsis", no_wrap=True, ratio=1)
    ops.add_column("age", justify="right")
    ops.add_column("progress", justify="right")
    for op in sorted(snap.in_flight, key=lambda o: -o.age_seconds)[:MAX_ROWS]:
        done = op.success + op.failure
        ops.add_row(
            str(op.shard_id),
            op.uri,
            (op.operation or "starting").rsplit("/", 1)[-1],
            format_duration(op.age_seconds),
            f"{done:,}/{op.expected:,}" + (f" [red]({op.failure} failed)[/]" if op.failure else ""),
        )
    if len(snap.in_flight) > MAX_ROWS:
        ops.caption = f"... and {len(snap.in_flight) - MAX_ROWS} more"
    return ops


def _messages(snap: Snapshot) -> list[RenderableType]:
    """The last few limit changes and errors, below the tables."""
    parts: list[RenderableType] = []
    if snap.limit_changes:
        parts.append(Text("limit changes: " + " | ".join(snap.limit_changes[-3:]), style="yellow"))
    if snap.last_errors:
        parts.append(Text("last errors:", style="bold red"))
        for err in snap.last_errors[-5:]:
            parts.append(Text("  " + err, style="red", overflow="ellipsis", no_wrap=True))
    return parts


def log_fields(snap: Snapshot) -> dict[str, Any]:
    """The board as one flat record, for periodic log lines when there is no terminal."""
    t = snap.totals
    return {
        **t.as_dict(),
        "throughput": round(snap.throughput, 2),
        "eta_s": None if snap.eta_seconds is None else round(snap.eta_seconds),
        "concurrency": snap.concurrency,
        "rate_per_minute": snap.rate_per_minute,
        "throttled": snap.throttled,
        **({f"files_{k}": v for k, v in snap.files.as_dict().items()} if snap.files else {}),
        "settling": snap.settling,
        **({k: v for k, v in snap.coverage.as_dict().items() if v} if snap.coverage else {}),
        "failing": snap.trouble,
    }
