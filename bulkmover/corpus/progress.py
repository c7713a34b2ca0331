"""Counters a corpus run keeps, and a rich progress bar that only reads them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich import filesize
from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from bulkmover.corpus.spec import CorpusFile


@dataclass
class WriteCounters:
    """Updated by the writer as files land; read by displays and summaries."""

    files_total: int = 0
    files_done: int = 0
    instances_done: int = 0
    bad_done: int = 0
    bytes_done: int = 0
    started: float = field(default_factory=time.monotonic)

    def landed(self, f: CorpusFile) -> None:
        self.files_done += 1
        self.bytes_done += f.size
        if f.valid:
            self.instances_done += 1
        else:
            self.bad_done += 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class ProgressView:
    """A one-line bar: files done/total, bytes, files/s."""

    def __init__(self, counters: WriteCounters, label: str = "corpus") -> None:
        self.counters = counters
        self.label = label

    def __rich__(self) -> RenderableType:
        c = self.counters
        rate = c.files_done / c.elapsed if c.elapsed > 0 else 0.0
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            self.label,
            ProgressBar(total=max(c.files_total, 1), completed=c.files_done, width=40),
            f"{c.files_done}/{c.files_total} files",
            filesize.decimal(c.bytes_done),
            f"{rate:,.0f} files/s",
        )
        return grid


@contextmanager
def live_progress(counters: WriteCounters, console: Console | None = None) -> Iterator[None]:
    """Show the bar while the block runs, on a terminal only (logs and pipes stay clean)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Live(ProgressView(counters), console=console, refresh_per_second=8):
        yield
