"""``bulkmover run --dry-run``: what a run would send, without sending it.

Plans first when the state file holds no plan (planning lists the bucket and records the plan,
as ``run`` would; it starts nothing), then describes every start the run would send: one
``dicomStores.import`` per pending shard (method, full URL, JSON body), how many operations that
is, and the limits the run would keep to. No Healthcare API request is made and nothing is
written to the run history: with a plan already there the state file is only read.

    report = dry_run(config)
    report.as_json()   # {"operations": 12, "starts": [{"method", "url", "body"}], "limits": {...}}
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from bulkmover.config import Config
from bulkmover.healthcare.client import DEFAULT_ENDPOINT
from bulkmover.healthcare.resources import StorePath
from bulkmover.healthcare.stats import Family
from bulkmover.state.lock import writer_lock
from bulkmover.state.store import ShardState, StateStore


@dataclass(frozen=True)
class Start:
    """One request the run would send to start an operation."""

    method: str
    url: str
    body: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "body": self.body}


@dataclass
class DryRun:
    starts: list[Start]
    limits: dict[str, Any]
    planned: bool = False
    """The state file held no plan: this dry run planned (listed the bucket) first."""
    reattach: int = 0
    """Shards already running: the run would poll their operations, not start them again."""
    notes: list[str] = field(default_factory=list)

    @property
    def operations(self) -> int:
        return len(self.starts)

    def as_json(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "starts": [s.as_json() for s in self.starts],
            "limits": self.limits,
        }


def import_start(config: Config, store: StorePath, uri: str) -> Start:
    """The ``dicomStores.import`` request ``HealthcareClient.import_dicom`` sends for ``uri``
    (the same URL and body; a test holds the two together)."""
    endpoint = (config.target.endpoint or DEFAULT_ENDPOINT).rstrip("/")
    body: dict[str, Any] = {"gcsSource": {"uri": uri}}
    if config.import_.storage_class is not None:
        body["blobStorageSettings"] = {"blobStorageClass": config.import_.storage_class}
    url = f"{endpoint}/{config.target.api_version}/{store.name}:import"
    return Start("POST", url, body)


def run_limits(config: Config) -> dict[str, Any]:
    """The limits ``run`` starts with, from the same settings the run builds them from."""
    from bulkmover.execution.runner import limit_settings

    settings = limit_settings(config)
    rates = settings.max_rates
    run = config.run
    return {
        "max_operations_in_flight": settings.max_concurrency,
        "requests_per_minute": _number(rates.get(Family.LRO_START.value, run.requests_per_minute)),
        "log_reads_per_minute": _number(rates.get(Family.LOGGING.value, run.log_reads_per_minute)),
        "concurrent_starts": run.concurrent_starts,
        "probe_throughput": run.probe_throughput,
        "give_up_after_seconds": run.give_up_after_seconds,
        "max_attempts": run.max_attempts,
    }


def _number(value: float) -> float | int:
    """120.0 shown as 120 (the config's counts are whole numbers)."""
    return int(value) if float(value).is_integer() else value


def dry_run(config: Config) -> DryRun:
    """Plan if needed, then the starts a run would send now; sends none."""
    planned = False
    if not _has_plan(config):
        from bulkmover.planning.plan import plan_async

        with writer_lock(config.state):  # planning writes the state file, like `plan`
            if not _has_plan(config):
                asyncio.run(plan_async(config))
                planned = True
    target = config.target.store_path
    with StateStore.open_readonly(config.state) as store:
        store.check_target(str(target))
        pending = store.runs.shards_in(ShardState.PENDING)
        running = store.runs.shards_in(ShardState.RUNNING)
    starts = [import_start(config, target, shard.uri) for shard in pending]
    report = DryRun(starts, run_limits(config), planned=planned, reattach=len(running))
    unnamed = sum(1 for shard in running if shard.operation is None)
    if unnamed:
        report.notes.append(
            f"{unnamed} running shard(s) have no operation name (a start's answer was lost):"
            " the run looks for their operations first and starts again only those it cannot"
            " find"
        )
    return report


def _has_plan(config: Config) -> bool:
    if not config.state.exists():
        return False
    with StateStore.open_readonly(config.state) as store:
        return store.latest_plan() is not None


def print_dry_run(report: DryRun, console: Console) -> None:
    """The human form: each start, then the count and the limits."""
    if report.planned:
        console.print("planned first (the state file held no plan)", highlight=False)
    for start in report.starts:
        console.print(f"{start.method} {escape(start.url)}", soft_wrap=True, highlight=False)
        console.print(f"  {escape(_compact(start.body))}", soft_wrap=True, highlight=False)
    console.print(
        f"dry run: {report.operations} import operation(s) would start"
        + (f", {report.reattach} running would be re-attached" if report.reattach else "")
        + "; nothing was sent",
        soft_wrap=True,
        highlight=False,
    )
    limits = ", ".join(f"{key} {value}" for key, value in report.limits.items())
    console.print(f"limits: {limits}", soft_wrap=True, highlight=False)
    for note in report.notes:
        console.print(f"note: {escape(note)}", soft_wrap=True, highlight=False)


def _compact(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(", ", ": "))
