"""`run`'s exit code and summary tell the truth about files the run did not import.

Real processes (our emulators, ``bulkmover`` as a user runs it): files the plan left out
(``import.unaddressable: skip``), files deleted after planning, files added under a shard
(drift), and an API that may or may not count a skipped duplicate (the spec says it is not
documented): exit 0 only when every matched file is imported, every such file named in the
summary and in ``status`` (human view included), and the totals the same under both readings.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cloudkit import EmulatorPair

from bulkmover.corpus import CorpusSpec, write_corpus

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=10, series_per_study=1, instances_per_series=4, bad_files=0, seed=44)

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}"}}
import:
  source: "gs://pacs/site-a/**.dcm"
  max_objects_per_shard: {per_shard}
  unaddressable: {unaddressable}
run: {{max_operations_in_flight: 4, requests_per_minute: 60000, max_attempts: 30}}
credentials: {{kind: anonymous}}
state: state/run.db
"""


def bulkmover(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)


@contextmanager
def seeded(
    tmp: Path, *hc_flags: str, unaddressable: str = "fail", per_shard: int = 8
) -> Iterator[tuple[EmulatorPair, Path, list[str]]]:
    """A cloud with the corpus and the store; the config; the corpus's object names."""
    cloud = EmulatorPair(tmp, *hc_flags)
    try:
        manifest = tmp / "truth.jsonl"
        asyncio.run(
            write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url, manifest=manifest)
        )
        cloud.make_store()
        config = tmp / "job.yaml"
        config.write_text(
            CONFIG.format(
                hc=cloud.hc.url, gcs=cloud.gcs.url, unaddressable=unaddressable, per_shard=per_shard
            )
        )
        names = sorted(json.loads(line)["name"] for line in manifest.read_text().splitlines())
        yield cloud, config, names
    finally:
        cloud.stop()


def run_json(config: Path) -> tuple[int, dict[str, Any], str]:
    result = bulkmover("run", str(config), "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def store_count(cloud: EmulatorPair) -> int:
    path = "/v1/projects/p/locations/l/datasets/d/dicomStores/s:getDICOMStoreMetrics"
    return int(cloud.http("GET", path).get("instanceCount", 0))


def board(config: Path) -> str:
    result = bulkmover("status", str(config))
    assert result.returncode == 0, result.stderr
    assert not re.search(r"\b(10[1-9]|1[1-9]\d|[2-9]\d\d)\.\d%", result.stdout), (
        result.stdout
    )  # never past 100%
    return result.stdout


def test_unplanned_files_make_the_run_incomplete_and_are_named(tmp_path: Path) -> None:
    with seeded(tmp_path, unaddressable="skip") as (cloud, config, names):
        # In a directory too big for one shard, no import URI can single these names out.
        matched = ["site-a/odd/n*.dcm", "site-a/odd/n?.dcm"]  # n0..n9 beside them
        for i, name in enumerate([*matched, *(f"site-a/odd/n{i}.dcm" for i in range(10))]):
            cloud.copy(names[i], name)

        code, summary, _ = run_json(config)
        assert code == 1, json.dumps(summary)  # the run itself planned: files were left out
        assert summary["ok"] is False
        assert summary["files"]["imported"] == SPEC.files + 10
        assert summary["coverage"]["unplanned"] == len(matched)

        human = bulkmover("run", str(config))
        assert human.returncode == 1
        assert f"{len(matched)} matched file(s) not planned" in human.stdout
        assert "complete" not in human.stdout.split("\n")[0].replace("incomplete", "")
        assert f"{len(matched)} matched file(s) not planned" in board(config)
        doc = json.loads(bulkmover("status", str(config), "--json").stdout)
        assert doc["coverage"]["unplanned"] == len(matched)
        table = bulkmover("report", str(config)).stdout
        for name in matched:
            assert f"gs://pacs/{name}" in table


def test_a_file_deleted_after_planning_is_named_and_fails_the_run_until_replanned(
    tmp_path: Path,
) -> None:
    with seeded(tmp_path) as (cloud, config, names):
        assert bulkmover("plan", str(config)).returncode == 0
        cloud.delete(names[3])

        code, summary, _ = run_json(config)
        assert code == 1 and summary["ok"] is False
        assert summary["coverage"]["gone"] == 1
        assert summary["files"]["imported"] == SPEC.files - 1
        human = bulkmover("run", str(config))
        assert human.returncode == 1
        assert "1 file(s) deleted from the bucket after planning" in human.stdout
        assert "deleted from the bucket after planning" in board(config)

        # The plan brought to the bucket: the file leaves it, and the run is complete.
        assert bulkmover("plan", str(config), "--replan").returncode == 0
        code, summary, _ = run_json(config)
        assert code == 0, summary
        assert summary["coverage"]["gone"] == 0
        assert summary["files"] == {
            "imported": SPEC.files - 1, "failed": 0, "unknown": 0, "pending": 0
        }  # fmt: skip
        assert summary["totals"]["expected"] == SPEC.files - 1
        assert store_count(cloud) == SPEC.files - 1


def test_files_added_under_a_planned_shard_are_named_and_never_past_100_percent(
    tmp_path: Path,
) -> None:
    with seeded(tmp_path) as (cloud, config, names):
        assert bulkmover("plan", str(config)).returncode == 0
        directory = names[0].rsplit("/", 1)[0]
        for i in range(3):
            cloud.copy(names[i + 10], f"{directory}/added-{i}.dcm")

        code, summary, _ = run_json(config)
        assert summary["coverage"]["drifted_shards"] >= 1
        assert summary["totals"]["success"] <= summary["totals"]["expected"]
        assert "counted other files than planned" in board(config)
        assert code == 0  # every file of the plan is imported; the drift is named


@pytest.mark.parametrize("reading", ["success", "skip"])
def test_totals_and_drift_do_not_depend_on_how_the_api_counts_duplicates(
    tmp_path: Path, reading: str
) -> None:
    """Half the operations fail part way through and are imported again: the files they had
    stored are duplicates the second time, counted as successes or not at all."""
    flags = ("--failed-operation-rate", "0.5", "--duplicates-count-as", reading, "--seed", "3")
    # Ten shards: with half the operations failing, some surely do (whatever the dice's order).
    with seeded(tmp_path, *flags, per_shard=4) as (cloud, config, _):
        code, summary, _ = run_json(config)
        assert code == 0, summary
        assert summary["ok"] is True
        assert summary["totals"]["success"] == SPEC.files
        assert summary["totals"]["failure"] == 0
        assert summary["coverage"]["drifted_shards"] == 0
        assert summary["files"]["imported"] == SPEC.files
        assert store_count(cloud) == SPEC.files
        retried = [o for o in cloud.imports() if o.get("error")]
        assert retried, "no operation failed part way: the test did not test anything"
        doc = json.loads(bulkmover("status", str(config), "--json").stdout)
        assert not any(s["drift"] for s in doc["shards"])
        assert doc["totals"]["success"] == SPEC.files
