"""The ``status`` command's body: one board (or JSON) from the state file; ``--watch`` repeats."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from bulkmover.board.render import render
from bulkmover.board.status import snapshot, status_json
from bulkmover.config import load_config
from bulkmover.state.store import StateStore


def status_command(config_path: Path, *, as_json: bool, watch: bool, interval: float = 1.0) -> None:
    config = load_config(config_path)
    store = StateStore.open_readonly(config.state)
    try:
        if as_json:
            sys.stdout.write(status_json(store) + "\n")
            return
        console = Console()
        title = f"bulkmover status: {config.import_.source}"
        if not watch:
            console.print(render(snapshot(store), title))
            return
        with Live(render(snapshot(store), title), console=console, refresh_per_second=2) as live:
            try:
                while True:
                    time.sleep(interval)
                    live.update(render(snapshot(store), title))
            except KeyboardInterrupt:
                pass
    finally:
        store.close()
