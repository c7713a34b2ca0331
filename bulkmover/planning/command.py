"""The ``plan`` command's body: config in, plan written, summary (or JSON) out.

stdout gets the summary, or with ``--json`` exactly the JSON document and nothing else; the
live progress goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from bulkmover.config import load_config
from bulkmover.planning.plan import plan
from bulkmover.planning.progress import LiveProgress
from bulkmover.planning.summary import plan_json, render_summary


def run_plan_command(config_path: Path, *, as_json: bool, replan: bool) -> None:
    config = load_config(config_path)
    errors = Console(stderr=True)
    progress = LiveProgress(errors) if errors.is_terminal else None
    outcome = plan(config, replan=replan, progress=progress)
    if as_json:
        json.dump(plan_json(outcome), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        render_summary(outcome, Console())
