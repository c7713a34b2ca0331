"""Chaos, end to end: a second `run` attempted, the API stopped mid-run, the bucket edited
between runs, faults throughout; every file still counted exactly once.

Real processes: our two emulators (the Healthcare one injecting 5xx answers, resets and failed
operations), ``bulkmover`` as a user runs it. The truth is computed here from the corpus
manifest and the edits made, never from bulkmover's own answers.
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
SPEC = CorpusSpec(studies=12, series_per_study=2, instances_per_series=3, bad_files=0, seed=61)
FAULTS = ("--fault-rate", "0.03", "--failed-operation-rate", "0.1", "--seed", "17")

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}"}}
import: {{source: "gs://pacs/site-a/**.dcm", max_objects_per_shard: 6}}
run:
  max_operations_in_flight: 3
  requests_per_minute: 60000
  max_attempts: 30
  give_up_after_seconds: {patience}
credentials: {{kind: anonymous}}
state: state/run.db
"""


def bulkmover(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write_config(config: Path, hc: str, gcs: str, patience: float) -> None:
    config.write_text(CONFIG.format(hc=hc, gcs=gcs, patience=patience))


def running(config: Path) -> list[dict[str, Any]]:
    if not (config.parent / "state" / "run.db").exists():
        return []
    result = bulkmover("status", str(config), "--json")
    if result.returncode != 0:
        return []
    shards = json.loads(result.stdout)["shards"]
    return [s for s in shards if s["state"] == "running" and s["operation"]]


def test_two_runs_an_api_outage_and_bucket_edits_end_with_every_file_once(
    tmp_path: Path,
) -> None:
    cloud = EmulatorPair(tmp_path, "--operation-time", "1.5", *FAULTS)
    try:
        manifest = tmp_path / "truth.jsonl"
        asyncio.run(
            write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url, manifest=manifest)
        )
        sop = {r["name"]: r["sop_uid"] for r in map(json.loads, manifest.read_text().splitlines())}
        cloud.make_store()
        config = tmp_path / "job.yaml"
        write_config(config, cloud.hc.url, cloud.gcs.url, patience=6)

        # 1. A run, and a second one attempted beside it: refused at once, naming the first.
        first = subprocess.Popen([*BULKMOVER, "run", str(config)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not running(config):
            assert time.monotonic() < deadline, "the first run recorded no operation"
            time.sleep(0.2)
        second = bulkmover("run", str(config))
        assert second.returncode != 0 and f"pid {first.pid}" in second.stderr

        # 2. The API goes away mid-run: the first run gives up, saying so, in bounded time.
        cloud.hc.stop()
        _, err = first.communicate(timeout=120)
        assert first.returncode == 1 and "gave up" in err, err

        # 3. The bucket changes while nothing runs: files added (under shards that ran, and in
        # a new directory), one deleted, one replaced by other bytes (a new generation).
        names = sorted(sop)
        added = {f"{names[0].rsplit('/', 1)[0]}/late-{i}.dcm": names[20 + i] for i in range(3)}
        added["site-a/9999/01/new/new/a.dcm"] = names[30]
        for name, source in added.items():
            cloud.copy(source, name)
            sop[name] = sop[source]
        deleted = names[5]
        cloud.delete(deleted)
        del sop[deleted]
        replaced, other = names[8], names[40]
        cloud.copy(other, replaced)
        sop[replaced] = sop[other]

        # 4. The API back (same data, a new port): the run re-attaches and finishes what the
        # plan holds; the deleted file is named, so it does not claim success.
        cloud.hc = start_healthcare_emulator(tmp_path / "hc", cloud.gcs.url, *FAULTS)
        write_config(config, cloud.hc.url, cloud.gcs.url, patience=120)
        resumed = bulkmover("run", str(config), "--json")
        assert resumed.returncode == 1, resumed.stderr
        assert json.loads(resumed.stdout)["coverage"]["gone"] == 1

        # 5. Replan to the bucket as it is now, and run: complete, exit 0.
        assert bulkmover("plan", str(config), "--replan").returncode == 0
        final = bulkmover("run", str(config), "--json")
        assert final.returncode == 0, final.stdout + final.stderr
        summary = json.loads(final.stdout)
        assert summary["ok"] is True

        # Every file the source matches now: exactly once in the ledger, imported.
        report = json.loads(bulkmover("report", str(config), "--json").stdout)
        per_uri = Counter(f["uri"] for f in report["files"])
        assert set(per_uri) == {f"gs://pacs/{n}" for n in sop}
        assert set(per_uri.values()) == {1}
        assert {f["outcome"] for f in report["files"]} == {"imported"}
        assert summary["totals"]["expected"] == len(sop) == summary["files"]["imported"]
        assert summary["totals"]["success"] == len(sop)
        changed = {f["uri"] for f in report["files"] if f.get("changed")}
        assert f"gs://pacs/{replaced}" in changed or _changed_in_csv(config, replaced)
        # The store holds every file's instance (verify reads each header and looks its SOP
        # UID up), and nothing beyond the corpus: the deleted file's instance and the replaced
        # file's first one are there only if their shard ran before the edit.
        metrics = cloud.http(
            "GET", "/v1/projects/p/locations/l/datasets/d/dicomStores/s:getDICOMStoreMetrics"
        )
        assert len(set(sop.values())) <= int(metrics["instanceCount"]) <= SPEC.instances
        assert bulkmover("verify", str(config), "--all").returncode == 0
    finally:
        cloud.stop()


def _changed_in_csv(config: Path, name: str) -> bool:
    rows = bulkmover("report", str(config), "--format", "csv").stdout.splitlines()
    return any(r.startswith(f"gs://pacs/{name},") and r.endswith(",1") for r in rows)
