"""Show Snapshots as they come: a rich Live board on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

import structlog
from rich.console import Console
from rich.live import Live

from bulkmover.board.model import Snapshot
from bulkmover.board.render import log_fields, render

log = structlog.get_logger("bulkmover.board")


class BoardSink:
    """Receives snapshots (``sink(snapshot)``); use as a context manager around the run.

    On a terminal it redraws a rich board a few times a second. Without one (CI, a log
    collector, ``nohup``) it prints one ``progress key=value ...`` line every ``interval``
    seconds to ``stream`` and logs the same fields.
    """

    def __init__(
        self,
        *,
        title: str = "bulkmover",
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval: float = 10.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.console = Console(file=self.stream, force_terminal=self.interactive or None)
        self.title = title
        self.interval = interval
        self.last: Snapshot | None = None
        self._live: Live | None = None
        self._last_line = 0.0
        self._printed: Snapshot | None = None

    def __enter__(self) -> BoardSink:
        if self.interactive:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            if self.last is not None:
                self._live.update(render(self.last, self.title))
            self._live.__exit__(exc_type, exc, tb)
            self._live = None
        elif self.last is not None and self._printed is not self.last:
            self._line(self.last)

    def __call__(self, snap: Snapshot) -> None:
        self.last = snap
        if self._live is not None:
            self._live.update(render(snap, self.title))
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval or snap.finished:
            self._line(snap)

    def _line(self, snap: Snapshot) -> None:
        self._last_line = time.monotonic()
        self._printed = snap
        fields = log_fields(snap)
        text = " ".join(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)
        print(f"progress {text}", file=self.stream, flush=True)
        log.info("progress", **fields)


def _value(value: object) -> str:
    """A sentence (what is failing) is quoted: the line stays key=value pairs."""
    return repr(value) if isinstance(value, str) and " " in value else str(value)
