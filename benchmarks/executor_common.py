"""Shared parts of the executor benchmarks: the local cloud, a corpus per shard, a config, a run.

Each benchmark starts the local cloud (both emulators as child processes, fresh data dir) with
its realism knobs, bulk-loads real DICOM files (``bulkmover.corpus``, re-identified pydicom
samples) into the GCS emulator, one directory per intended shard, writes a YAML config per run
(own DICOM store, own state file), plans it, and runs ``bulkmover run CONFIG --json`` as a
subprocess, so the figures are those of the real command: its wall time, its own CPU time
(``os.wait4`` of that one process, emulators excluded) and its JSON summary. The server's view
comes from the Healthcare emulator's admin list (``GET /_emulator/operations``: every operation
with its create and end times and counters), the client's from the JSON log beside the state file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import yaml

from bulkmover.corpus import CorpusSpec, iter_corpus
from bulkmover.emulator.gcs import BulkRow, bulk_load_sync
from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.launcher import LocalCloud

BULKMOVER = str(Path(sys.executable).with_name("bulkmover"))
PROJECT, LOCATION, STORE = "bench", "us-central1", "archive"


def start_cloud(data_dir: Path, healthcare: HealthcareRealism) -> LocalCloud:
    """Both emulators on free loopback ports; the caller must ``stop()`` it."""
    cloud = LocalCloud.start(data_dir, gcs_knobs=GcsRealism(), healthcare_knobs=healthcare)
    time.sleep(1.0)  # let the Healthcare emulator's worker processes finish importing pydicom
    return cloud


def load_shards(gcs_url: str, bucket: str, shards: int, files_per_shard: int, seed: int = 1) -> int:
    """Bulk-load ``shards`` directories ``s00000/`` ... of ``files_per_shard`` DICOM files each.

    Every file is a distinct valid instance (its own SOP Instance UID), so each import really
    parses and stores one instance per file.
    """
    spec = CorpusSpec(studies=shards, instances_per_series=files_per_shard, seed=seed)

    def rows() -> Iterator[BulkRow]:
        for i, f in enumerate(iter_corpus(spec)):
            yield BulkRow(
                f"s{i // files_per_shard:05d}/{i % files_per_shard:04d}.dcm", content=f.data
            )

    return bulk_load_sync(gcs_url, bucket, rows())


@dataclass(frozen=True)
class RunKnobs:
    """The config's ``run:`` section."""

    max_operations_in_flight: int
    requests_per_minute: int
    probe_throughput: bool = False
    probe_window_seconds: float = 60.0
    max_attempts: int = 8
    concurrent_starts: int = 1  # starts unanswered at once (1: lost starts always matched)


def write_config(
    path: Path,
    cloud: LocalCloud,
    *,
    bucket: str,
    dataset: str,
    files_per_shard: int,
    run: RunKnobs,
    prefix: str = "",
) -> Path:
    """A config importing ``gs://bucket/PREFIX**.dcm``, one shard per directory, into a store of
    its own dataset (operations are listed per dataset, so earlier runs do not weigh on polling)."""
    config = {
        "target": {
            "project": PROJECT,
            "location": LOCATION,
            "dataset": dataset,
            "dicom_store": STORE,
            "endpoint": cloud.healthcare.url,
        },
        "storage": {"endpoint": cloud.gcs.url},
        "import": {
            "source": f"gs://{bucket}/{prefix}**.dcm",
            "max_objects_per_shard": files_per_shard,
        },
        "run": {
            "max_operations_in_flight": run.max_operations_in_flight,
            "requests_per_minute": run.requests_per_minute,
            "probe_throughput": run.probe_throughput,
            "probe_window_seconds": run.probe_window_seconds,
            "max_attempts": run.max_attempts,
            "concurrent_starts": run.concurrent_starts,
        },
        "credentials": {"kind": "anonymous"},
        "state": str(path.with_suffix(".db")),
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def plan(config: Path) -> int:
    """``bulkmover plan CONFIG --json``; returns the number of shards."""
    out = subprocess.run(
        [BULKMOVER, "plan", str(config), "--json"], check=True, capture_output=True, text=True
    )
    return int(json.loads(out.stdout)["totals"]["shards"])


def create_store(cloud: LocalCloud, dataset: str) -> None:
    """Create ``dataset`` and its store, so that ``run`` passes its preflight."""
    import asyncio

    from bulkmover.healthcare import HealthcareClient, StorePath

    async def create() -> None:
        async with HealthcareClient(endpoint=cloud.healthcare.url) as client:
            await client.ensure_dicom_store(StorePath(PROJECT, LOCATION, dataset, STORE))

    asyncio.run(create())


@dataclass(frozen=True)
class RunOutcome:
    """What one ``bulkmover run --json`` reported and cost."""

    summary: dict[str, Any]
    wall: float  # seconds, from spawn to exit
    cpu: float  # user + system seconds of the run process alone
    exit_code: int
    log: Path

    @property
    def api_calls(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.summary.get("api_calls", {}).items()}


def run(config: Path, *, timeout: float = 3600.0) -> RunOutcome:
    """``bulkmover run CONFIG --json`` as a child process; CPU from ``os.wait4`` of that child."""
    stdout = config.with_suffix(".stdout")
    stderr = config.with_suffix(".stderr")
    started = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen([BULKMOVER, "run", str(config), "--json"], stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"{config}: run did not finish in {timeout:.0f} s")
            time.sleep(0.05)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    text = stdout.read_text(encoding="utf-8").strip()
    if not text:
        tail = stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"{config}: run printed no summary (exit {proc.returncode}): {tail}")
    return RunOutcome(
        summary=json.loads(text.splitlines()[-1]),
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        exit_code=proc.returncode,
        log=config.with_name(config.stem + ".log.jsonl"),
    )


# -- the server's view ----------------------------------------------------------------------


def stamp(text: str) -> float:
    """RFC 3339 -> POSIX seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class ServerOp:
    name: str
    method: str
    store: str
    created: float
    ended: float | None
    success: int
    failure: int
    error: Any


def server_operations(cloud: LocalCloud, dataset: str | None = None) -> list[ServerOp]:
    """Every import the Healthcare emulator started (in ``dataset`` if given), oldest first."""
    with urlopen(f"{cloud.healthcare.url}/_emulator/operations", timeout=120) as resp:
        data = json.load(resp)
    ops = [
        ServerOp(
            name=o["name"],
            method=o["method"] or "",
            store=o["store"] or "",
            created=stamp(o["createTime"]),
            ended=stamp(o["endTime"]) if o.get("endTime") else None,
            success=int(o["counter"]["success"] or 0),
            failure=int(o["counter"]["failure"] or 0),
            error=o.get("error"),
        )
        for o in data["operations"]
        if "Import" in (o["method"] or "")
    ]
    if dataset is not None:
        ops = [o for o in ops if f"/datasets/{dataset}/" in o.name]
    return sorted(ops, key=lambda o: o.created)


@dataclass(frozen=True)
class Span:
    """First start to last end on the server's clock, and what was done in between."""

    operations: int
    instances: int
    first_created: float
    last_ended: float

    @property
    def seconds(self) -> float:
        return self.last_ended - self.first_created

    @property
    def rate(self) -> float:
        return self.instances / self.seconds if self.seconds > 0 else 0.0


def span(ops: Sequence[ServerOp]) -> Span:
    ended = [o.ended for o in ops if o.ended is not None]
    return Span(
        operations=len(ops),
        instances=sum(o.success + o.failure for o in ops),
        first_created=min(o.created for o in ops),
        last_ended=max(ended) if ended else float("nan"),
    )


# -- the client's view ----------------------------------------------------------------------


@dataclass
class LogEvents:
    """The run's JSON log, reduced to what the benchmarks read."""

    retries: list[tuple[float, str, int | None]] = field(
        default_factory=list
    )  # time, method, status
    limit_changes: list[tuple[float, str]] = field(default_factory=list)

    def throttled(self, method_prefix: str = "", since: float = float("-inf")) -> int:
        return sum(
            1
            for at, method, status in self.retries
            if status == 429 and at >= since and method.startswith(method_prefix)
        )


def read_log(path: Path) -> LogEvents:
    events = LogEvents()
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        at = stamp(rec["timestamp"]) if "timestamp" in rec else float("nan")
        if rec.get("event") == "healthcare.retry":
            events.retries.append((at, str(rec.get("method", "")), rec.get("status")))
        elif rec.get("event") == "limit_changed":
            events.limit_changes.append((at, str(rec.get("change", ""))))
    return events


# -- output ---------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; numbers right-aligned (a header starting with '#' or ending in a unit)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}, Python {sys.version.split()[0]}"
