"""A run whose API goes away, or refuses to be polled: it says so, stops, and resumes exactly.

Real processes: our two emulators and ``bulkmover run`` as a user starts it. The Healthcare
emulator is stopped for good in the middle of a run, or denies every operations call (a role
without ``healthcare.operations.get``); afterwards it comes back on the same data directory and
the next ``run`` re-attaches and ends with every file counted exactly once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cloudkit import EmulatorPair, start_healthcare_emulator

from bulkmover.corpus import CorpusSpec, write_corpus

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=12, series_per_study=1, instances_per_series=4, bad_files=0, seed=33)

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}"}}
import: {{source: "gs://pacs/site-a/**.dcm", max_objects_per_shard: 6}}
run:
  max_operations_in_flight: 3
  requests_per_minute: 60000
  give_up_after_seconds: {patience}
credentials: {{kind: anonymous}}
state: state/run.db
"""


def bulkmover(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, cloud: EmulatorPair, hc_url: str, patience: float) -> None:
    path.write_text(CONFIG.format(hc=hc_url, gcs=cloud.gcs.url, patience=patience))


def seeded(tmp: Path, *hc_flags: str, patience: float) -> tuple[EmulatorPair, Path]:
    cloud = EmulatorPair(tmp, *hc_flags)
    try:
        asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url))
        cloud.make_store()
    except BaseException:
        cloud.stop()
        raise
    config = tmp / "job.yaml"
    write_config(config, cloud, cloud.hc.url, patience)
    return cloud, config


def status_doc(config: Path) -> dict[str, Any]:
    result = bulkmover("status", str(config), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def wait_for_running(config: Path, count: int = 1, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (config.parent / "state" / "run.db").exists():
            doc = status_doc(config)
            if sum(1 for s in doc["shards"] if s["operation"] and s["state"] == "running") >= count:
                return
        time.sleep(0.2)
    raise AssertionError("no operation was running before the deadline")


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def assert_every_file_once(cloud: EmulatorPair, config: Path) -> None:
    """Every planned file imported, once in the ledger; the store holds exactly the corpus."""
    report = bulkmover("report", str(config), "--json")
    assert report.returncode == 0, report.stderr
    files = json.loads(report.stdout)["files"]
    names = Counter(f["uri"] for f in files)
    assert len(names) == SPEC.files and max(names.values()) == 1
    assert {f["outcome"] for f in files} == {"imported"}
    metrics = cloud.http(
        "GET", "/v1/projects/p/locations/l/datasets/d/dicomStores/s:getDICOMStoreMetrics"
    )
    assert int(metrics["instanceCount"]) == SPEC.instances


def resume_on_a_new_api(
    cloud: EmulatorPair, config: Path, tmp: Path, started: dict[str, str], *flags: str
) -> None:
    """The Healthcare emulator back on its data (a new port): the next run re-attaches to the
    operations ``started`` (uri -> name) instead of submitting their shards again, and ends
    with every file once."""
    cloud.hc = start_healthcare_emulator(tmp / "hc", cloud.gcs.url, *flags)
    write_config(config, cloud, cloud.hc.url, 60)
    again = bulkmover("run", str(config), "--json")
    assert again.returncode == 0, again.stderr
    per_uri = Counter(o["request"]["gcsSource"]["uri"] for o in cloud.imports())
    for uri in started:
        assert per_uri[uri] == 1, f"{uri} was submitted again after the API came back"
    assert_every_file_once(cloud, config)


def test_a_run_whose_api_goes_away_says_so_gives_up_and_resumes_exactly(tmp_path: Path) -> None:
    cloud, config = seeded(tmp_path, "--operation-time", "3", "--seed", "8", patience=8)
    try:
        proc = subprocess.Popen([*BULKMOVER, "run", str(config)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for_running(config)
        cloud.hc.stop()  # the API is gone for good (for this run)
        stopped_at = time.monotonic()

        # While calls fail, a second terminal sees it on the board, not only in the log.
        shown = ""
        while time.monotonic() - stopped_at < 7 and "API calls failing" not in shown:
            shown = bulkmover("status", str(config)).stdout
            time.sleep(0.3)
        assert "API calls failing" in shown, shown

        out, err = proc.communicate(timeout=120)
        waited = time.monotonic() - stopped_at
        assert proc.returncode == 1, err
        line = one_error_line(err)
        assert "gave up" in line and "127.0.0.1" in line and "run again" in line
        # Counted from the last success, a moment before the API went away.
        assert 5 <= waited < 60, f"gave up after {waited:.0f}s, patience was 8s"
        assert "failing=" in err  # the progress lines said so too (no terminal here)
        assert "gave up" in bulkmover("status", str(config)).stdout

        # Operations already started kept their names: the next run re-attaches to them.
        running = {
            s["uri"]: s["operation"]
            for s in status_doc(config)["shards"]
            if s["state"] == "running" and s["operation"]
        }
        assert running
        resume_on_a_new_api(cloud, config, tmp_path, running, "--seed", "8")
        assert "API calls failing" not in bulkmover("status", str(config)).stdout
    finally:
        cloud.stop()


def test_permission_denied_on_polling_stops_the_run_at_once(tmp_path: Path) -> None:
    """A 403 on operations.get is not retried for ever (it was, 5 times a second)."""
    cloud, config = seeded(tmp_path, "--operation-time", "1", "--deny", "operations", patience=900)
    try:
        began = time.monotonic()
        result = bulkmover("run", str(config), "--json", timeout=120)
        assert time.monotonic() - began < 60
        assert result.returncode == 1, result.stderr
        line = one_error_line(result.stderr)
        assert "403" in line and "permission" in line.lower() and "run again" in line
        doc = status_doc(config)
        started = {s["uri"]: s["operation"] for s in doc["shards"] if s["operation"]}
        assert started and all(s["state"] in ("running", "pending") for s in doc["shards"])

        # Permission granted (the emulator back without --deny): the run re-attaches.
        cloud.hc.stop()
        resume_on_a_new_api(cloud, config, tmp_path, started)
    finally:
        cloud.stop()
