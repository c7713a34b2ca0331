"""The ``run`` command's body: config in, run, board on stderr, summary (or JSON) on stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from bulkmover.config import load_config
from bulkmover.execution.executor import RunResult
from bulkmover.execution.runner import RunOptions, result_json, run_sync
from bulkmover.state.store import StateStore
from bulkmover.units import format_duration


def run_command(
    config_path: Path, *, as_json: bool, retry_failed: bool = False, create_store: bool = False
) -> int:
    config = load_config(config_path)
    if retry_failed and config.state.exists():
        with StateStore.open(config.state) as store:
            store.runs.retry_failed()
    result = run_sync(config, options=RunOptions(create_store=create_store))
    if as_json:
        json.dump(result_json(result), sys.stdout)
        sys.stdout.write("\n")
    else:
        print_summary(result, Console())
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


def print_summary(result: RunResult, console: Console) -> None:
    t = result.totals
    verdict = (
        "[green]complete[/]"
        if result.ok
        else "[yellow]interrupted[/]"
        if result.interrupted
        else "[red]finished with failures[/]"
    )
    console.print(
        f"run {verdict} in {format_duration(result.elapsed)}: "
        f"{t.done}/{t.shards} shards done, {t.failed} failed, {t.pending + t.running} left; "
        f"instances {t.success:,} ok, {t.failure:,} failed of {t.expected:,} expected",
        soft_wrap=True,
    )
    calls = ", ".join(f"{k} {v}" for k, v in sorted(result.api_calls.items()) if v)
    console.print(f"API calls: {calls or 'none'}; 429 answers: {result.throttled}", soft_wrap=True)
    if result.interrupted:
        console.print("run it again to resume: running operations are re-attached, not repeated")
    elif not result.ok:
        what = []
        if t.failed:
            what.append(f"{t.failed} failed shard(s)")
        if t.failure:
            what.append(f"{t.failure:,} failed file(s)")
        console.print(
            f"{' and '.join(what) or 'shards not done'}: see `bulkmover status CONFIG`; "
            "`bulkmover run CONFIG --retry-failed` queues those shards again",
            soft_wrap=True,
        )
