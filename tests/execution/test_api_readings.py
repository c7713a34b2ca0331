"""The engine under every plausible reading of what Google's documentation leaves open.

Each reading is a knob of our Healthcare emulator; the same scenario runs under each: a run with
bad files and operations failing part way, killed with SIGKILL mid-run, then resumed. Each must
end with exact per-file outcomes (every valid file imported, exactly the bad files failed), every
shard imported to completion once, and no stall.

- ``--operations-filter``: operations.list applies ``filter=done=false``, ignores it (every
  operation of the dataset comes back), or rejects it with 400;
- ``--partial-failure``: an import with failed files ends with ``response`` or with ``error``
  beside its counters;
- ``--quota-errors``: a refused start (the running-operations cap) and a rate quota say so in
  this emulator's words, in Google's with ``ErrorInfo`` details, or in a bare sentence.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cloudkit import EmulatorPair

from bulkmover.corpus import CorpusSpec, write_corpus

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=10, series_per_study=1, instances_per_series=4, bad_files=3, seed=52)
BASE = ("--operation-time", "1", "--failed-operation-rate", "0.15", "--seed", "5")

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}"}}
import: {{source: "gs://pacs/site-a/**.dcm", max_objects_per_shard: 4}}
run:
  max_operations_in_flight: 8
  requests_per_minute: 60000
  max_attempts: 30
  give_up_after_seconds: 120
  probe_throughput: false  # eight in flight from the start: polled by list
credentials: {{kind: anonymous}}
state: state/run.db
"""


def bulkmover(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def running(config: Path) -> int:
    if not (config.parent / "state" / "run.db").exists():
        return 0
    result = bulkmover("status", str(config), "--json")
    if result.returncode != 0:
        return 0
    shards = json.loads(result.stdout)["shards"]
    return sum(1 for s in shards if s["state"] == "running" and s["operation"])


def scenario(tmp: Path, *flags: str) -> tuple[EmulatorPair, Path, dict[str, Any]]:
    """Run, kill -9 once two operations run, resume: (cloud, config, the final run's JSON)."""
    cloud = EmulatorPair(tmp, *BASE, *flags)
    manifest = tmp / "truth.jsonl"
    asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url, manifest=manifest))
    cloud.make_store()
    config = tmp / "job.yaml"
    config.write_text(CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url))
    proc = subprocess.Popen([*BULKMOVER, "run", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while running(config) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "no operation was recorded"
        time.sleep(0.2)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    began = time.monotonic()
    result = bulkmover("run", str(config), "--json")
    assert time.monotonic() - began < 200  # no stall
    assert result.returncode == 1, result.stderr  # the bad files
    return cloud, config, json.loads(result.stdout)


def check_exact(cloud: EmulatorPair, config: Path, summary: dict[str, Any], tmp: Path) -> None:
    truth = [json.loads(line) for line in (tmp / "truth.jsonl").read_text().splitlines()]
    bad = {f"gs://pacs/{r['name']}" for r in truth if not r["valid"]}
    assert summary["files"] == {
        "imported": SPEC.instances, "failed": SPEC.bad_files, "unknown": 0, "pending": 0
    }  # fmt: skip
    assert summary["totals"]["success"] == SPEC.instances
    assert summary["totals"]["failure"] == SPEC.bad_files
    assert summary["totals"]["done"] == summary["totals"]["shards"]
    assert summary["coverage"]["drifted_shards"] == 0
    report = json.loads(bulkmover("report", str(config), "--json", "--failed").stdout)
    assert {f["uri"] for f in report["files"]} == bad
    assert all(f["error"]["message"] for f in report["files"])
    # On the server: every shard ran to completion exactly once (no shard imported twice, even
    # across the kill); operations that failed part way were imported again, as they must be.
    doc = json.loads(bulkmover("status", str(config), "--json").stdout)
    complete = Counter(
        o["request"]["gcsSource"]["uri"]
        for o in cloud.imports()
        if o["done"] and (not o["error"] or o["error"]["code"] == 3)
    )
    assert complete == Counter(s["uri"] for s in doc["shards"] if s["operation"])


@pytest.mark.parametrize("reading", ["supported", "ignored", "rejected"])
def test_operations_list_filter_read_any_way(tmp_path: Path, reading: str) -> None:
    cloud, config, summary = scenario(tmp_path, "--operations-filter", reading)
    try:
        check_exact(cloud, config, summary, tmp_path)
        with sqlite3.connect(config.parent / "state" / "run.db") as conn:
            switched = conn.execute("SELECT count(*) FROM events WHERE kind='poll-by-get'")
            assert (switched.fetchone()[0] > 0) == (reading != "supported")
        calls = summary["api_calls"]["operations"]
        # Never a month of operations paged through every poll: calls stay per operation.
        assert calls < 60 * summary["totals"]["shards"], calls
    finally:
        cloud.stop()


@pytest.mark.parametrize("reading", ["response", "error"])
def test_a_partly_failed_import_read_either_way(tmp_path: Path, reading: str) -> None:
    cloud, config, summary = scenario(tmp_path, "--partial-failure", reading)
    try:
        check_exact(cloud, config, summary, tmp_path)
        if reading == "error":
            ended_with_error = [o for o in cloud.imports() if (o["error"] or {}).get("code") == 3]
            assert ended_with_error, "no import ended with an error: nothing was tested"
    finally:
        cloud.stop()


@pytest.mark.parametrize("wording", ["emulator", "error_info", "bare"])
def test_a_429_worded_any_way(tmp_path: Path, wording: str) -> None:
    """Eight operations wanted, three allowed to run: starts are refused all along."""
    flags = ("--quota-errors", wording, "--max-running-operations", "3")
    cloud, config, summary = scenario(tmp_path, *flags)
    try:
        check_exact(cloud, config, summary, tmp_path)
        assert summary["throttled"] > 0, "no start was refused: nothing was tested"
    finally:
        cloud.stop()


@pytest.mark.parametrize(
    "flags",
    [
        ("--log-labels", "camel"),
        ("--log-labels", "none", "--log-name", "operations"),
        ("--log-name", "import_dicom_data", "--log-ingestion-delay", "1"),
        ("--duplicates-count-as", "skip"),
    ],
    ids=" ".join,
)
def test_log_entries_and_duplicates_read_any_way(tmp_path: Path, flags: tuple[str, ...]) -> None:
    """The same kill -9 and failure scenario under the Logging and duplicate-count readings."""
    cloud, config, summary = scenario(tmp_path, *flags)
    try:
        check_exact(cloud, config, summary, tmp_path)
    finally:
        cloud.stop()


def test_an_import_denied_its_source_stops_the_run_at_the_first(tmp_path: Path) -> None:
    """The service agent may not read the bucket: every import would end PERMISSION_DENIED.
    Without the preflight, the first such operation stops the run with the grant to make."""
    cloud = EmulatorPair(tmp_path, "--agent-denied-buckets", "pacs")
    try:
        asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url))
        cloud.make_store()
        config = tmp_path / "job.yaml"
        config.write_text(CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url))
        result = bulkmover("run", str(config), "--no-preflight")
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "gcp-sa-healthcare" in errors[0], result.stderr
        shards = json.loads(bulkmover("status", str(config), "--json").stdout)["totals"]["shards"]
        assert len(cloud.imports()) <= 8 < shards  # at most those in flight, not every shard
    finally:
        cloud.stop()
