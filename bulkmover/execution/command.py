"""The ``run`` command's body: config in, run, board on stderr, summary (or JSON) on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from rich.console import Console

from bulkmover.config import Config, load_config
from bulkmover.errors import StateError, UsageError
from bulkmover.execution.executor import RunResult
from bulkmover.execution.runner import (
    STAGE_STORAGE_CONCURRENCY,
    RunOptions,
    result_json,
    run_sync,
)
from bulkmover.gcs.client import storage_client
from bulkmover.outcomes.retry import RetryPlan, prepare_retry
from bulkmover.state.lock import writer_lock
from bulkmover.state.store import StateStore
from bulkmover.units import format_duration


def run_command(
    config_path: Path,
    *,
    as_json: bool,
    retry_failed: bool = False,
    create_store: bool = False,
    error_code: int | None = None,
    dry_run: bool = False,
    preflight: bool = True,
) -> int:
    config = load_config(config_path)
    if error_code is not None and not retry_failed:
        raise UsageError("--error-code only applies with --retry-failed; add --retry-failed")
    if dry_run:
        return _dry_run(config, as_json=as_json, retry_failed=retry_failed)
    if retry_failed and not config.state.exists() and error_code is not None:
        raise StateError(f"state file {config.state} not found; nothing has failed yet")
    # One hold of the writer lock across the retry's preparation and the run it feeds.
    with writer_lock(config.state):
        if preflight:  # before anything is submitted; a failed check is one line
            from bulkmover.preflight.command import run_preflight

            run_preflight(config, create_store=create_store)
        if retry_failed and config.state.exists():
            plan = asyncio.run(_prepare_retry(config, error_code))
            Console(stderr=True).print(plan.line(), soft_wrap=True, highlight=False)
        result = run_sync(config, options=RunOptions(create_store=create_store))
    if as_json:
        json.dump(result_json(result), sys.stdout)
        sys.stdout.write("\n")
    else:
        print_summary(result, Console())
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


def _dry_run(config: Config, *, as_json: bool, retry_failed: bool) -> int:
    """``run --dry-run``: the starts a run would send, sent nowhere (``execution.dryrun``)."""
    from bulkmover.execution.dryrun import dry_run, print_dry_run

    if retry_failed:
        raise UsageError("--dry-run does not apply to --retry-failed; drop one of them")
    report = dry_run(config)
    if as_json:
        json.dump(report.as_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print_dry_run(report, Console())
    return 0


async def _prepare_retry(config: Config, error_code: int | None) -> RetryPlan:
    with StateStore.open(config.state) as store:
        store.check_target(str(config.target.store_path))
        if store.latest_plan() is None:
            raise StateError(
                f"state file {config.state} holds no plan; run `bulkmover plan CONFIG` first"
            )
        async with storage_client(config, STAGE_STORAGE_CONCURRENCY) as storage:
            return await prepare_retry(
                store,
                storage,
                error_code=error_code,
                max_objects=config.import_.max_objects_per_shard,
            )


def print_summary(result: RunResult, console: Console) -> None:
    t, f, coverage = result.totals, result.files, result.coverage
    verdict = (
        "[green]complete[/]"
        if result.ok
        else "[yellow]interrupted[/]"
        if result.interrupted
        else "[red]incomplete[/]"
        if not coverage.complete and not (t.failed or f.failed or f.unknown)
        else "[red]finished with failures[/]"
    )
    console.print(
        f"run {verdict} in {format_duration(result.elapsed)}: "
        f"{t.done}/{t.shards} shards done, {t.failed} failed, {t.pending + t.running} left; "
        f"instances {t.success:,} ok, {t.failure:,} failed of {t.expected:,} expected",
        soft_wrap=True,
    )
    console.print(
        f"files: {f.imported:,} imported, {f.failed:,} failed, {f.unknown:,} unknown,"
        f" {f.pending:,} pending",
        soft_wrap=True,
    )
    for note in coverage.notes():
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True, highlight=False)
    calls = ", ".join(f"{k} {v}" for k, v in sorted(result.api_calls.items()) if v)
    console.print(f"API calls: {calls or 'none'}; 429 answers: {result.throttled}", soft_wrap=True)
    if result.interrupted:
        console.print("run it again to resume: running operations are re-attached, not repeated")
    elif not result.ok:
        what = []
        if t.failed:
            what.append(f"{t.failed} failed shard(s)")
        if f.failed:
            what.append(f"{f.failed:,} failed file(s)")
        if f.unknown:
            what.append(f"{f.unknown:,} file(s) of unknown outcome")
        if not what and not coverage.complete:
            console.print("not every file the source matches was imported: see the notes above")
            return
        console.print(
            f"{' and '.join(what) or 'shards not done'}: see `bulkmover report CONFIG --failed`;"
            " `bulkmover run CONFIG --retry-failed` imports exactly those files again",
            soft_wrap=True,
        )
