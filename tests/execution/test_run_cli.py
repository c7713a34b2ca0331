"""`bulkmover run` / `status` as a user runs them: subprocesses against the real emulators.

Covers the exit codes, the JSON documents, resume after kill -9 and after Ctrl-C (re-attaching
to operations instead of submitting them again, checked on the emulator's side), and one-line
errors for bad input that leave the state file untouched.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudkit import EmulatorPair

from bulkmover.corpus import CorpusSpec, write_corpus

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=16, series_per_study=1, instances_per_series=4, bad_files=3, seed=21)

CONFIG = """\
target:
  project: p
  location: l
  dataset: d
  dicom_store: s
  endpoint: {hc}
storage:
  endpoint: {gcs}
import:
  source: gs://pacs/site-a/**.dcm
  max_objects_per_shard: {per_shard}
run:
  max_operations_in_flight: 4
  requests_per_minute: 60000
credentials:
  kind: anonymous
state: state/run.db
"""


Cloud = EmulatorPair


def seeded_cloud(tmp: Path, *hc_flags: str, per_shard: int = 8) -> tuple[Cloud, Path]:
    cloud = Cloud(tmp, *hc_flags)
    try:
        asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url))
        cloud.make_store()
    except BaseException:
        cloud.stop()  # never leave servers behind a failed set-up
        raise
    config = tmp / "job.yaml"
    config.write_text(CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url, per_shard=per_shard))
    return cloud, config


def bulkmover(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)


def status(config: Path) -> dict[str, Any]:
    result = bulkmover("status", str(config), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture()
def quick(tmp_path: Path) -> Iterator[tuple[Cloud, Path]]:
    cloud, config = seeded_cloud(tmp_path)
    yield cloud, config
    cloud.stop()


def test_run_plans_imports_and_reports(quick: tuple[Cloud, Path]) -> None:
    cloud, config = quick
    result = bulkmover("run", str(config), "--json")
    # The corpus holds bad files: the run completes but must not exit 0.
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    totals = summary["totals"]
    assert totals["success"] == SPEC.instances
    assert totals["failure"] == SPEC.bad_files
    assert totals["done"] == totals["shards"] and totals["failed"] == 0
    assert summary["ok"] is False and summary["interrupted"] is False

    doc = status(config)
    assert set(doc) >= {"totals", "shards"}
    assert doc["totals"]["success"] == SPEC.instances
    assert doc["totals"]["expected"] == SPEC.files
    assert len(doc["shards"]) == doc["totals"]["shards"]
    for shard in doc["shards"]:
        assert set(shard) >= {"id", "uri", "state", "operation", "success", "failure", "expected"}
        assert shard["state"] == "done"
        assert shard["success"] + shard["failure"] == shard["expected"]
    # Every shard imported once, on the emulator's side.
    uris = Counter(o["request"]["gcsSource"]["uri"] for o in cloud.imports())
    assert uris == Counter(s["uri"] for s in doc["shards"])
    # A structured log beside the state file, with no secrets.
    log = config.parent / "state" / "run.log.jsonl"
    assert log.exists() and '"event"' in log.read_text()

    # Running again over a finished state submits nothing.
    again = bulkmover("run", str(config), "--json")
    assert json.loads(again.stdout)["totals"] == totals
    assert len(cloud.imports()) == sum(uris.values())

    board = bulkmover("status", str(config))
    assert board.returncode == 0 and "shards" in board.stdout

    # --retry-failed imports exactly the failed files again, in new small shards (not their
    # whole shards); the bad files fail again, nothing else is imported.
    with_failures = [s["uri"] for s in doc["shards"] if s["failure"]]
    assert with_failures
    retried = bulkmover("run", str(config), "--retry-failed", "--json")
    assert retried.returncode == 1, retried.stderr
    assert json.loads(retried.stdout)["files"]["failed"] == SPEC.bad_files
    fresh = cloud.imports()[sum(uris.values()) :]
    assert fresh and all(o["request"]["gcsSource"]["uri"] not in uris for o in fresh)
    assert sum(o["counter"]["failure"] + o["counter"]["success"] for o in fresh) == SPEC.bad_files


def _running_operations(config: Path) -> dict[str, str]:
    """uri -> operation name of shards whose operation name is committed and still running."""
    if not (config.parent / "state" / "run.db").exists():
        return {}
    result = bulkmover("status", str(config), "--json")
    if result.returncode != 0:
        return {}
    doc = json.loads(result.stdout)
    return {
        s["uri"]: s["operation"]
        for s in doc["shards"]
        if s["operation"] and s["state"] == "running"
    }


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_without_resubmitting(tmp_path: Path, how: int) -> None:
    cloud, config = seeded_cloud(tmp_path, "--operation-time", "2.5", "--seed", "5", per_shard=6)
    try:
        proc = subprocess.Popen([*BULKMOVER, "run", str(config)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        recorded: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(recorded) < 2:
            time.sleep(0.3)
            recorded = _running_operations(config)
        assert recorded, "no operation was recorded before the deadline"
        proc.send_signal(how)
        code = proc.wait(60)
        if how == signal.SIGINT:
            assert code == 130, proc.stderr.read() if proc.stderr else ""
        # The interrupted state is readable and consistent.
        mid = status(config)
        assert all(s["state"] in ("pending", "running", "done") for s in mid["shards"])

        result = bulkmover("run", str(config), "--json")
        assert result.returncode == 1, result.stderr  # bad files
        final = json.loads(result.stdout)["totals"]
        assert final["success"] == SPEC.instances and final["failure"] == SPEC.bad_files
        imports = cloud.imports()
        per_uri = Counter(o["request"]["gcsSource"]["uri"] for o in imports)
        for uri, name in recorded.items():
            assert per_uri[uri] == 1, f"{uri} was submitted again after its operation {name}"
        names = {o["name"] for o in imports}
        assert set(recorded.values()) <= names
    finally:
        cloud.stop()


def kill_runs(config: Path, rng: random.Random, *, times: int, after: tuple[float, float]) -> None:
    """``bulkmover run`` killed with SIGKILL ``times`` times, each a random moment into it."""
    for _ in range(times):
        proc = subprocess.Popen([*BULKMOVER, "run", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(*after))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)


def test_kill9_at_random_moments_with_faults_ends_exactly_once(tmp_path: Path) -> None:
    """Repeated kill -9 while the server injects 5xx, resets and failed operations."""
    cloud, config = seeded_cloud(
        tmp_path, "--operation-time", "0.6", "--fault-rate", "0.05",
        "--failed-operation-rate", "0.15", "--seed", "9", per_shard=4,
    )  # fmt: skip
    try:
        kill_runs(config, random.Random(1234), times=4, after=(0.8, 3.0))
        result = bulkmover("run", str(config), "--json", timeout=300)
        doc = status(config)
        states = Counter(s["state"] for s in doc["shards"])
        assert states["pending"] == 0 and states["running"] == 0, states
        assert result.returncode in (0, 1), result.stderr
        totals = doc["totals"]
        # Instance totals equal the corpus: every valid file in, every bad one counted failed.
        assert totals["success"] == SPEC.instances, totals
        assert totals["failure"] == SPEC.bad_files, totals
        # On the server: a shard is imported successfully exactly once, even when a kill fell
        # between its POST and the commit of the operation's name, or a reset hid the answer
        # (the operation is found and adopted); its recorded operation is that one.
        imports = cloud.imports()
        for shard in doc["shards"]:
            ops = [o for o in imports if o["request"]["gcsSource"]["uri"] == shard["uri"]]
            ok = [o for o in ops if not o["error"]]
            assert len(ok) == 1, (shard["uri"], ok, _history(config, shard["id"]))
            assert shard["operation"] == ok[0]["name"]
    finally:
        cloud.stop()


def _history(config: Path, shard_id: int) -> list[tuple[str, str]]:
    """A shard's events, for the message of a failed assertion."""
    with sqlite3.connect(config.parent / "state" / "run.db") as conn:
        rows = conn.execute(
            "SELECT kind, detail FROM events WHERE shard_id=? OR shard_id IS NULL ORDER BY id",
            (shard_id,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows if r[0] != "limit"]


def _events(config: Path, kind: str) -> list[str]:
    with sqlite3.connect(config.parent / "state" / "run.db") as conn:
        rows = conn.execute("SELECT detail FROM events WHERE kind=?", (kind,)).fetchall()
    return [r[0] for r in rows]


def test_kill9_in_the_middle_of_starts_imports_no_shard_twice(tmp_path: Path) -> None:
    """Every answer comes 0.4 s after its effect, so a start is usually unanswered when the kill
    lands: its operation runs on the server, unknown to the state file. The next run must find
    and adopt that operation, not start a second one."""
    cloud, config = seeded_cloud(
        tmp_path, "--answer-latency", "0.4", "--operation-time", "1.0", "--seed", "4", per_shard=4
    )
    try:
        kill_runs(config, random.Random(77), times=3, after=(2.5, 4.0))
        result = bulkmover("run", str(config), "--json", timeout=300)
        assert result.returncode == 1, result.stderr  # the corpus's bad files
        doc = status(config)
        assert all(s["state"] == "done" for s in doc["shards"])
        assert doc["totals"]["success"] == SPEC.instances
        per_uri = Counter(o["request"]["gcsSource"]["uri"] for o in cloud.imports())
        for shard in doc["shards"]:  # one operation each
            assert per_uri[shard["uri"]] == 1, (shard, _history(config, shard["id"]))
        # The kills did land mid-start: some operation was found and adopted, none orphaned.
        assert _events(config, "adopted"), "no kill fell in the middle of a start"
        assert not _events(config, "orphans")
    finally:
        cloud.stop()


def test_refused_credentials_are_one_line_and_submit_nothing(tmp_path: Path) -> None:
    cloud, config = seeded_cloud(tmp_path, "--require-auth")
    try:
        result = bulkmover("run", str(config))
        assert result.returncode != 0
        assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
        assert "401" in result.stderr or "credential" in result.stderr.lower(), result.stderr
        assert cloud.imports() == []
    finally:
        cloud.stop()


def test_bad_inputs_are_one_line_errors_and_leave_state_untouched(tmp_path: Path) -> None:
    missing = bulkmover("run", str(tmp_path / "nope.yaml"))
    assert missing.returncode != 0
    assert missing.stderr.startswith("error:") and missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("target: {project: p}\nimport: {source: gs://b/**.dcm}\nstate: s.db\nfoo: 1\n")
    result = bulkmover("run", str(bad))
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "bad.yaml" in result.stderr
    assert not (tmp_path / "s.db").exists()

    cloud, config = seeded_cloud(tmp_path / "c")
    try:
        # A store that does not exist: one line naming it, nothing submitted.
        text = config.read_text().replace("dicom_store: s", "dicom_store: missing")
        config.write_text(text)
        result = bulkmover("run", str(config))
        assert result.returncode != 0
        assert result.stderr.count("\n") == 1 and "missing" in result.stderr, result.stderr
        assert cloud.imports() == []
        before = status(config)
        assert all(s["state"] == "pending" and s["operation"] is None for s in before["shards"])
    finally:
        cloud.stop()
    # Unreachable endpoint (the cloud is stopped): one line, state unchanged.
    result = bulkmover("run", str(config))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert status(config) == before


def test_a_second_writer_during_a_run_stops_at_once_and_imports_nothing(tmp_path: Path) -> None:
    """Two `run`s (or a `plan --replan` under a `run`) on one state file: the second stops at
    once with one line naming the first; every shard is imported once."""
    cloud, config = seeded_cloud(tmp_path, "--operation-time", "1.5", "--seed", "6", per_shard=6)
    try:
        first = subprocess.Popen(
            [*BULKMOVER, "run", str(config), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not _running_operations(config):
            assert time.monotonic() < deadline, "the first run recorded no operation"
            time.sleep(0.2)
        for args in (["run", str(config)], ["plan", str(config), "--replan"]):
            second = bulkmover(*args)
            assert second.returncode != 0, second.stdout
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
            assert f"pid {first.pid}" in second.stderr, second.stderr
        out, err = first.communicate(timeout=240)
        assert first.returncode == 1, err  # the corpus's bad files
        doc = status(config)
        assert all(s["state"] == "done" for s in doc["shards"])
        per_uri = Counter(o["request"]["gcsSource"]["uri"] for o in cloud.imports())
        assert per_uri == Counter(s["uri"] for s in doc["shards"])  # each shard once
        assert bulkmover("report", str(config), "--json").returncode == 0
    finally:
        cloud.stop()
