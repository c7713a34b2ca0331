"""Every file's outcome after `bulkmover run`, exactly, against the real emulators.

The emulator logs at most one error per operation (``--log-errors-per-operation 1``), answers 5%
of requests with 5xx or resets, and the bucket holds duplicates and bad files scattered over many
shards: the state file must still name exactly the bad files as failed, with the API's reason,
and every other file as imported; also after kill -9 at random moments, and with the Logging
ingestion delay on.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cloudkit import EmulatorPair

from bulkmover.corpus import CorpusSpec, read_manifest, write_corpus

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=20, series_per_study=2, instances_per_series=3, bad_files=14, seed=5)
DUPLICATES = 4

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}"}}
import:
  source: gs://pacs/site-a/**.dcm
  max_objects_per_shard: 12
run:
  max_operations_in_flight: 4
  requests_per_minute: 60000
  log_settle_seconds: {settle}
  log_deadline_seconds: 60
{extra}credentials: {{kind: anonymous}}
state: state/run.db
"""


Cloud = EmulatorPair


@contextmanager
def seeded(
    tmp: Path, *hc_flags: str, settle: float = 1.0, extra: str = ""
) -> Iterator[tuple[Cloud, Path, dict[str, str]]]:
    """The cloud, a config, and the truth (every file's expected outcome); the cloud stops
    when the block ends."""
    cloud = Cloud(tmp, *hc_flags)
    try:
        manifest = tmp / "truth.jsonl"
        asyncio.run(
            write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url, manifest=manifest)
        )
        records = list(read_manifest(manifest))
        truth = {r["name"]: "imported" if r["valid"] else "failed" for r in records}
        valid = [r["name"] for r in records if r["valid"]]
        # Copies of stored instances under new names: skipped by the API, in the store anyway.
        for n, name in enumerate(random.Random(3).sample(valid, DUPLICATES)):
            copy = f"site-a/copies/{n:03d}.dcm"
            cloud.copy(name, copy)
            truth[copy] = "imported"
        cloud.make_store()
        config = tmp / "job.yaml"
        config.write_text(
            CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url, settle=settle, extra=extra)
        )
        yield cloud, config, truth
    finally:
        cloud.stop()


def bulkmover(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)


def outcomes(config: Path) -> dict[str, tuple[str, int | None, str | None]]:
    """Every ledger file's (outcome, error code, error message) by object name, as
    `bulkmover report CONFIG --json` tells them (its totals checked against the files)."""
    result = bulkmover("report", str(config), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"totals", "files"}
    assert doc["totals"] == dict(
        Counter(f["outcome"] for f in doc["files"])
        | {
            k: 0
            for k in ("imported", "failed", "unknown", "pending")
            if k not in {f["outcome"] for f in doc["files"]}
        }
    )
    found: dict[str, tuple[str, int | None, str | None]] = {}
    for f in doc["files"]:
        assert set(f) == {"uri", "size", "shard", "outcome", "error"}
        assert f["uri"].startswith("gs://pacs/")
        error = f["error"]
        found[f["uri"][len("gs://pacs/") :]] = (
            f["outcome"],
            error and error["code"],
            error and error["message"],
        )
    return found


def assert_exact(config: Path, truth: dict[str, str]) -> None:
    found = outcomes(config)
    assert set(found) == set(truth)
    wrong = {n: found[n] for n in truth if found[n][0] != truth[n]}
    assert not wrong, wrong
    for name, (outcome, code, message) in found.items():
        if outcome == "failed":
            assert code is not None and code > 0 and message, (name, code, message)
        else:
            assert code is None and message is None, (name, code, message)


def kill_runs(config: Path, rng: random.Random, times: int, after: tuple[float, float]) -> None:
    for _ in range(times):
        proc = subprocess.Popen([*BULKMOVER, "run", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(*after))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)


def run_json(config: Path) -> dict[str, Any]:
    result = bulkmover("run", str(config), "--json")
    assert result.returncode == 1 and result.stdout, result.stderr  # bad files: not clean
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_capped_log_faults_and_duplicates_every_file_exact(tmp_path: Path) -> None:
    with seeded(
        tmp_path, "--log-errors-per-operation", "1", "--fault-rate", "0.05", "--seed", "4"
    ) as (cloud, config, truth):
        summary = run_json(config)
        bad = sum(1 for v in truth.values() if v == "failed")
        assert summary["files"] == {
            "imported": len(truth) - bad,
            "failed": bad,
            "unknown": 0,
            "pending": 0,
        }
        assert_exact(config, truth)
        # The log alone could not have told: some shard had more failures than entries.
        conn = sqlite3.connect(config.parent / "state" / "run.db")
        children = conn.execute("SELECT count(*) FROM shards WHERE parent_id IS NOT NULL")
        narrowed = conn.execute("SELECT count(*) FROM events WHERE kind = 'narrowing'")
        assert narrowed.fetchone()[0] > 0
        assert children.fetchone()[0] >= 0
        conn.close()


@pytest.mark.slow
def test_kill9_during_resolution_still_exact(tmp_path: Path) -> None:
    with seeded(
        tmp_path, "--log-errors-per-operation", "1", "--fault-rate", "0.05",
        "--operation-time", "0.3", "--seed", "8",
    ) as (cloud, config, truth):  # fmt: skip
        kill_runs(config, random.Random(99), times=5, after=(1.0, 4.0))
        run_json(config)
        assert_exact(config, truth)


@pytest.mark.slow
def test_log_ingestion_delay_still_exact(tmp_path: Path) -> None:
    with seeded(
        tmp_path, "--log-errors-per-operation", "1", "--log-ingestion-delay", "2",
        "--seed", "6", settle=3.0,
    ) as (cloud, config, truth):  # fmt: skip
        run_json(config)
        assert_exact(config, truth)


@pytest.mark.slow
def test_resolution_off_leaves_unknown_with_the_reason(tmp_path: Path) -> None:
    with seeded(
        tmp_path, "--log-errors-per-operation", "1", "--seed", "2",
        extra="  resolve_failures: false\n",
    ) as (cloud, config, truth):  # fmt: skip
        config.write_text(
            config.read_text().replace("log_deadline_seconds: 60", "log_deadline_seconds: 2")
        )
        summary = run_json(config)
        found = outcomes(config)
        unknown = [v for v in found.values() if v[0] == "unknown"]
        assert summary["files"]["unknown"] == len(unknown) > 0
        assert all("resolve_failures" in (v[2] or "") for v in unknown)
        # Files the log named are failed with the reason; no bad file is called imported.
        assert all(found[n][0] != "imported" for n, v in truth.items() if v == "failed")
        assert Counter(v[0] for v in found.values())["pending"] == 0


@pytest.mark.slow
def test_retry_failed_imports_exactly_the_failed_files(tmp_path: Path) -> None:
    with seeded(tmp_path, "--seed", "12") as (cloud, config, truth):
        run_json(config)
        bad = sorted(n for n, v in truth.items() if v == "failed")
        before = outcomes(config)
        # An unknown error code: one line, non-zero, nothing changed.
        refused = bulkmover("run", str(config), "--retry-failed", "--error-code", "99")
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "--error-code 99" in refused.stderr
        assert outcomes(config) == before
        # Fix one bad file in the bucket (a new generation holding a new, valid instance).
        spare = CorpusSpec(studies=1, series_per_study=1, instances_per_series=1, seed=77)
        manifest = tmp_path / "spare.jsonl"
        asyncio.run(
            write_corpus(
                "gs://pacs/spare", spare, storage_endpoint=cloud.gcs.url, manifest=manifest
            )
        )
        [fixed] = [r["name"] for r in read_manifest(manifest)]
        cloud.copy(fixed, bad[0])
        imports_before = len(cloud.imports())
        result = bulkmover("run", str(config), "--retry-failed", "--json")
        assert result.returncode == 1, result.stderr  # the other bad files fail again
        assert f"retrying {len(bad)} failed file(s)" in result.stderr
        after = outcomes(config)
        assert after[bad[0]] == ("imported", None, None)
        assert all(after[n][0] == "failed" and after[n][1] for n in bad[1:])
        assert all(after[n][0] == "imported" for n, v in truth.items() if v == "imported")
        # Only the failed files were imported again: the retry operations' counters add up to them.
        retried = cloud.imports()[imports_before:]
        counters = [o["counter"] for o in retried]
        assert sum(c["success"] + c["failure"] + c["skipped"] for c in counters) == len(bad)
        conn = sqlite3.connect(config.parent / "state" / "run.db")
        changed = conn.execute(
            "SELECT d.path || o.name FROM objects o JOIN directories d ON d.id = o.directory_id"
            " WHERE o.changed = 1"
        ).fetchall()
        conn.close()
        assert changed == [(bad[0],)]


@pytest.mark.slow
def test_a_log_that_names_nothing_is_resolved_by_stow(tmp_path: Path) -> None:
    """Cap 0: no entry ever comes. After the deadline the probe leaves the bad files, and
    STOW-RS says why each one fails."""
    flags = ("--log-errors-per-operation", "0", "--seed", "3")
    with seeded(tmp_path, *flags) as (cloud, config, truth):
        config.write_text(
            config.read_text().replace("log_deadline_seconds: 60", "log_deadline_seconds: 3")
        )
        run_json(config)
        assert_exact(config, truth)
        found = outcomes(config)
        assert all("STOW" in (found[n][2] or "") for n, v in truth.items() if v == "failed")


@pytest.mark.slow
def test_a_config_pointing_at_another_store_is_refused_state_untouched(tmp_path: Path) -> None:
    with seeded(tmp_path, "--seed", "13") as (cloud, config, truth):
        run_json(config)
        before = outcomes(config)
        original = config.read_text()
        config.write_text(original.replace("dicom_store: s", "dicom_store: other"))
        for args in (["run"], ["run", "--retry-failed"], ["report"], ["verify"]):
            result = bulkmover(*args, str(config))
            assert result.returncode != 0 and "Traceback" not in result.stderr
            assert result.stderr.count("\n") == 1 and "belongs to DICOM store" in result.stderr
        config.write_text(original)
        assert outcomes(config) == before


@pytest.mark.slow
def test_files_changed_since_planning_are_flagged_and_a_deleted_one_fails(tmp_path: Path) -> None:
    with seeded(tmp_path, "--seed", "21") as (cloud, config, truth):
        assert bulkmover("plan", str(config)).returncode == 0
        valid = sorted(n for n, v in truth.items() if v == "imported" and "copies" not in n)
        deleted, replaced = valid[0], valid[5]
        cloud.delete(deleted)
        cloud.copy(replaced, replaced)  # the same bytes, a new generation
        run_json(config)
        found = outcomes(config)
        assert found[deleted][0] == "failed" and found[deleted][1] == 5
        assert "deleted" in (found[deleted][2] or "")
        assert found[replaced] == ("imported", None, None)
        truth[deleted] = "failed"
        assert {n: v[0] for n, v in found.items()} == truth
        conn = sqlite3.connect(config.parent / "state" / "run.db")
        changed = conn.execute(
            "SELECT d.path || o.name FROM objects o JOIN directories d ON d.id = o.directory_id"
            " WHERE o.changed = 1 ORDER BY 1"
        ).fetchall()
        conn.close()
        assert changed == sorted([(deleted,), (replaced,)])
