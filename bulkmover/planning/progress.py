"""Live view of a listing on stderr: a read-only rendering of ``ListingStats`` (rich).

The lister only bumps counters; this view samples them a few times a second, so the display
costs the lister nothing and can never slow it down or change what it does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.text import Text

from bulkmover.gcs.listing import ListingStats
from bulkmover.units import format_bytes


class LiveProgress:
    """``plan(config, progress=LiveProgress(Console(stderr=True)))``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._last: tuple[float, int, int] | None = None
        self._rates = (0.0, 0.0)

    @contextmanager
    def listing(self, stats: ListingStats) -> Iterator[None]:
        with Live(
            console=self.console,
            refresh_per_second=4,
            transient=True,
            get_renderable=lambda: self.render(stats),
        ):
            yield

    @contextmanager
    def phase(self, text: str) -> Iterator[None]:
        with self.console.status(f"{text}..."):
            yield

    def render(self, stats: ListingStats) -> Text:
        seen_rate, matched_rate = self._rate(stats)
        line = Text()
        line.append("listing ", style="bold")
        line.append(stats.source, style="cyan")
        line.append(
            f"  {stats.seen:,} seen ({seen_rate:,.0f}/s)  {stats.matched:,} matched"
            f" ({matched_rate:,.0f}/s, {format_bytes(stats.matched_bytes)})"
            f"  pieces: {stats.pieces_active} listing, {stats.pieces_queued} queued,"
            f" {stats.pieces_done} done  {stats.pages:,} pages  {stats.elapsed:.1f}s"
        )
        return line

    def _rate(self, stats: ListingStats) -> tuple[float, float]:
        """Objects per second over the last second or so (smoothed)."""
        now = time.monotonic()
        if self._last is not None:
            then, seen, matched = self._last
            span = now - then
            if span < 0.5:
                return self._rates
            self._rates = ((stats.seen - seen) / span, (stats.matched - matched) / span)
        self._last = (now, stats.seen, stats.matched)
        return self._rates
