"""`bulkmover verify` as a user runs it, after a real `bulkmover run` on the emulators.

Covers the count check, a seeded sample, --all finding an instance deleted from the store behind
bulkmover's back (DICOMweb DELETE) and a source file gone from Cloud Storage, the JSON document,
exit codes, one-line errors for bad input, and that the state file is only read.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cloudkit import start_gcs_emulator, start_healthcare_emulator

from bulkmover.config import load_config
from bulkmover.corpus import CorpusFile, CorpusSpec, iter_corpus, write_corpus
from bulkmover.emulator.processes import RunningServer
from bulkmover.verification import Unreadable, VerifyReport
from bulkmover.verification.check import Mode
from bulkmover.verification.ledger import ImportedFiles, open_ledger

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=8, series_per_study=2, instances_per_series=3, bad_files=3, seed=11)
STORE = "projects/p/locations/l/datasets/d/dicomStores/s"

CONFIG = """\
target:
  project: p
  location: l
  dataset: d
  dicom_store: {store}
  endpoint: {hc}
storage:
  endpoint: {gcs}
import:
  source: gs://pacs/site-a/**.dcm
  max_objects_per_shard: 10
run:
  max_operations_in_flight: 4
  requests_per_minute: 60000
credentials:
  kind: anonymous
state: {state}
"""


class Cloud:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.gcs = start_gcs_emulator(tmp / "gcs")
        try:
            self.hc = start_healthcare_emulator(tmp / "hc", self.gcs.url)
        except BaseException:
            self.gcs.stop()
            raise
        self.files = {f.name: f for f in iter_corpus(SPEC) if f.valid}

    def stop(self) -> None:
        self.hc.stop()
        self.gcs.stop()

    def request(self, server: RunningServer, method: str, path: str) -> Any:
        body = b"{}" if method == "POST" else None
        req = urllib.request.Request(
            server.url + path, data=body, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def config(self, store: str = "s", state: str = "state/run.db", name: str = "job") -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(CONFIG.format(hc=self.hc.url, gcs=self.gcs.url, store=store, state=state))
        return path

    def delete_instance(self, f: CorpusFile) -> None:
        path = (
            f"/v1/{STORE}/dicomWeb/studies/{f.study_uid}/series/{f.series_uid}"
            f"/instances/{f.sop_uid}"
        )
        assert self.request(self.hc, "DELETE", path) == {}

    def delete_object(self, name: str) -> None:
        self.request(self.gcs, "DELETE", f"/storage/v1/b/pacs/o/{quote(name, safe='')}")


def bulkmover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=180)


def verify_json(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = bulkmover("verify", str(config), "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def imported_in_ledger(state: Path) -> int:
    """Files the ledger records as imported; filled by SQL for a run that records no outcomes
    (every file of a shard without failures)."""
    with sqlite3.connect(state) as conn:
        count = conn.execute("SELECT count(*) FROM objects WHERE outcome='imported'").fetchone()[0]
        if count == 0:
            conn.execute(
                "UPDATE objects SET outcome='imported' WHERE shard_id IN"
                " (SELECT id FROM shards WHERE state='done' AND failure=0)"
            )
            count = conn.execute(
                "SELECT count(*) FROM objects WHERE outcome='imported'"
            ).fetchone()[0]
    return int(count)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, Path]]:
    """A cloud after `bulkmover run` of a corpus with bad files, and its config."""
    cloud = Cloud(tmp_path_factory.mktemp("verify"))
    try:
        asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url))
        config = cloud.config()
        run = bulkmover("run", str(config), "--json", "--create-store")
        assert run.returncode == 1, run.stderr  # the bad files fail
        assert json.loads(run.stdout)["totals"]["failure"] == SPEC.bad_files
        yield cloud, config
    finally:
        cloud.stop()


def state_of(config: Path) -> Path:
    return config.parent / "state" / "run.db"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_counts_sample_and_all_agree_after_a_run(migrated: tuple[Cloud, Path]) -> None:
    cloud, config = migrated
    imported = imported_in_ledger(state_of(config))
    assert imported == SPEC.instances  # every good file; the bad ones failed
    before = digest(state_of(config))

    code, doc = verify_json(config)
    assert code == 0
    assert doc == {
        "store": STORE,
        "instances": SPEC.instances,
        "imported_files": SPEC.instances,
        "checked": 0,
        "missing": [],
        "unreadable": [],
        "ok": True,
        "mode": "count",
        "note": "the store's instance count matches the imported files",
    }

    code, first = verify_json(config, "--sample", "7", "--seed", "3")
    assert code == 0 and first["checked"] == 7 and first["ok"]
    code, big = verify_json(config, "--sample", "1000")
    assert code == 0 and big["checked"] == SPEC.instances

    code, every = verify_json(config, "--all")
    assert code == 0 and every["checked"] == SPEC.instances and every["missing"] == []

    text = bulkmover("verify", str(config), "--all")
    assert text.returncode == 0, text.stderr
    assert f"checked {SPEC.instances} files (all): {SPEC.instances} in the store" in text.stdout
    assert "every checked file's instance is in the store" in text.stdout
    assert digest(state_of(config)) == before  # read only


def test_all_finds_an_instance_deleted_behind_bulkmovers_back(
    migrated: tuple[Cloud, Path],
) -> None:
    cloud, config = migrated
    imported_in_ledger(state_of(config))
    victim = sorted(cloud.files)[5]
    cloud.delete_instance(cloud.files[victim])

    code, doc = verify_json(config, "--all")
    assert code == 1 and doc["ok"] is False
    assert doc["instances"] == SPEC.instances - 1
    assert doc["imported_files"] == SPEC.instances and doc["checked"] == SPEC.instances
    sop = cloud.files[victim].sop_uid
    assert doc["missing"] == [{"uri": f"gs://pacs/{victim}", "sop_uid": sop}]
    assert doc["unreadable"] == []
    assert doc["note"].startswith("1 more imported files than instances")

    # Counting alone explains the difference but cannot name the file: it does not fail.
    code, counted = verify_json(config)
    assert code == 0 and "--all tells whether any instance is missing" in counted["note"]

    # A source file gone from Cloud Storage cannot be checked: reported, and a difference.
    gone = sorted(cloud.files)[9]
    cloud.delete_object(gone)
    text = bulkmover("verify", str(config), "--all")
    assert text.returncode == 1
    out = text.stdout
    assert f"{SPEC.instances - 2} in the store, 1 missing, 1 unreadable" in out
    assert f"gs://pacs/{victim}  SOP Instance UID {sop}" in out
    assert f"gs://pacs/{gone}: object not found" in out
    assert "differences found" in out and "Traceback" not in text.stderr


def test_bad_input_is_one_line(migrated: tuple[Cloud, Path], tmp_path: Path) -> None:
    cloud, config = migrated

    def refused(cfg: Path, *args: str) -> str:
        result = bulkmover("verify", str(cfg), *args)
        assert result.returncode not in (0,), result.stdout
        assert "Traceback" not in result.stderr and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    fresh = cloud.config(state=str(tmp_path / "none.db"), name="fresh")
    assert "state file" in refused(fresh) and "not found" in refused(fresh)
    assert not (tmp_path / "none.db").exists()

    other = cloud.config(store="other", name="other")
    assert f"belongs to DICOM store {STORE}" in refused(other)

    # A state file of a store that is gone.
    copy = tmp_path / "gone.db"
    shutil.copy(state_of(config), copy)
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "UPDATE meta SET value=? WHERE key='target_store'", (STORE.replace("/s", "/gone"),)
        )
    gone = cloud.config(store="gone", state=str(copy), name="gone")
    assert "DICOM store projects/p/locations/l/datasets/d/dicomStores/gone not found" in refused(
        gone
    )

    assert "exclude each other" in refused(config, "--sample", "3", "--all")
    assert "--seed chooses the files of --sample" in refused(config, "--seed", "3")
    assert "Example:" in bulkmover("verify", "--help").stdout


def test_samples_are_seeded_and_stream_in_ledger_order(migrated: tuple[Cloud, Path]) -> None:
    _, config = migrated
    state = open_ledger(load_config(config))
    try:
        ledger = ImportedFiles(state)
        everything = [f.uri for f in ledger.all()]
        assert len(everything) == ledger.count() == len(set(everything))
        first = [f.uri for f in ledger.sample(9, seed=4)]
        assert first == [f.uri for f in ledger.sample(9, seed=4)]
        assert first != [f.uri for f in ledger.sample(9, seed=5)]
        assert len(first) == 9 and set(first) <= set(everything)
        assert first == [uri for uri in everything if uri in set(first)]  # ledger order
        assert [f.uri for f in ledger.sample(10_000, seed=1)] == everything
    finally:
        state.close()


@pytest.mark.parametrize(
    ("files", "instances", "mode", "says"),
    [
        (10, 10, "count", "the store's instance count matches the imported files"),
        (12, 10, "sample", "2 more imported files than instances: a file whose instance was"),
        (12, 10, "all", "counts as imported without adding an instance"),
        (10, 13, "count", "the store holds 3 more instances than files bulkmover imported"),
        (0, 4, "count", "no file is recorded as imported yet; the store holds 4 instances"),
    ],
)
def test_the_count_note(files: int, instances: int, mode: Mode, says: str) -> None:
    report = VerifyReport(STORE, instances, files, mode)
    assert says in report.note
    assert ("--all tells" in report.note) == (files > instances and mode != "all")
    assert report.ok and report.to_json()["note"] == report.note
    report.unreadable.append(Unreadable("gs://b/x.dcm", "object not found"))
    assert not report.ok and report.to_json()["unreadable"] == [
        {"uri": "gs://b/x.dcm", "reason": "object not found"}
    ]
