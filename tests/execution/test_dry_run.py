"""`bulkmover run --dry-run`: plans if needed, prints every start it would send, sends none.

Against the real emulators: after the dry run the Healthcare emulator has run no import, the
state file holds the plan and no shard has been attempted, and the output names every shard's
URI with the URL and body a run would POST. A scripted server holds the dry run's request to
what ``HealthcareClient.import_dicom`` really sends.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudkit import EmulatorPair

from bulkmover.config import parse_config
from bulkmover.corpus import CorpusSpec, write_corpus
from bulkmover.execution.dryrun import import_start
from bulkmover.healthcare.client import HealthcareClient

sys.path.insert(0, str(Path(__file__).parents[1] / "healthcare"))
from hc_scripted import start_scripted  # noqa: E402  (tests/healthcare holds the server)

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=12, series_per_study=1, instances_per_series=4, bad_files=2, seed=5)
STORE = "projects/p/locations/l/datasets/d/dicomStores/s"

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: '{hc}'}}
storage: {{endpoint: '{gcs}'}}
import: {{source: gs://pacs/site-a/**.dcm, max_objects_per_shard: 8, storage_class: NEARLINE}}
run: {{max_operations_in_flight: 7, requests_per_minute: 120, log_reads_per_minute: 30,
      give_up_after_seconds: 300, max_attempts: 5}}
credentials: {{kind: anonymous}}
state: state/run.db
"""


def bulkmover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorPair]:
    pair = EmulatorPair(tmp_path_factory.mktemp("cloud"))
    try:
        asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=pair.gcs.url))
        pair.make_store()
        yield pair
    finally:
        pair.stop()


def job(cloud: EmulatorPair, tmp_path: Path) -> Path:
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url))
    return config


def shards(config: Path) -> list[dict[str, Any]]:
    result = bulkmover("status", str(config), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["shards"]  # type: ignore[no-any-return]


def test_dry_run_plans_prints_every_start_and_sends_none(
    cloud: EmulatorPair, tmp_path: Path
) -> None:
    config = job(cloud, tmp_path)
    result = bulkmover("run", str(config), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    planned = shards(config)  # the dry run planned: the state file holds the plan
    assert len(planned) > 1 and report["operations"] == len(planned) == len(report["starts"])
    url = f"{cloud.hc.url}/v1/{STORE}:import"
    assert report["starts"] == [
        {
            "method": "POST",
            "url": url,
            "body": {
                "gcsSource": {"uri": shard["uri"]},
                "blobStorageSettings": {"blobStorageClass": "NEARLINE"},
            },
        }
        for shard in planned
    ]
    assert isinstance(report["limits"]["requests_per_minute"], int)
    assert report["limits"] == {
        "max_operations_in_flight": 7,
        "requests_per_minute": 120,
        "log_reads_per_minute": 30,
        "concurrent_starts": 1,
        "probe_throughput": True,
        "give_up_after_seconds": 300,
        "max_attempts": 5,
    }
    # Nothing sent, nothing in the run history.
    assert cloud.imports() == []
    assert {s["state"] for s in planned} == {"pending"} and {s["attempts"] for s in planned} == {0}
    with sqlite3.connect(tmp_path / "state" / "run.db") as db:
        runs = db.execute("SELECT count(*) FROM events WHERE kind NOT LIKE 'plan%'").fetchone()
    assert runs == (0,)

    # With the plan there, the human form names every start and plans nothing new.
    again = bulkmover("run", str(config), "--dry-run")
    assert again.returncode == 0, again.stderr
    out = again.stdout
    assert "planned first" not in out
    for shard in planned:
        assert f'"uri": "{shard["uri"]}"' in out
    assert out.count(f"POST {url}") == len(planned)
    assert f"{len(planned)} import operation(s) would start" in out and "nothing was sent" in out
    assert "max_operations_in_flight 7," in out and "requests_per_minute 120," in out
    assert cloud.imports() == [] and shards(config) == planned


def test_dry_run_refuses_retry_failed(cloud: EmulatorPair, tmp_path: Path) -> None:
    result = bulkmover("run", str(job(cloud, tmp_path)), "--dry-run", "--retry-failed")
    assert result.returncode == 2 and "--dry-run does not apply to --retry-failed" in result.stderr
    assert cloud.imports() == []


async def test_the_printed_start_is_what_the_client_sends(tmp_path: Path) -> None:
    server, test_server = await start_scripted()
    server.default.body = {"name": f"{STORE.rsplit('/dicomStores', 1)[0]}/operations/1"}
    try:
        config = parse_config(
            CONFIG.format(hc=server.url, gcs="http://127.0.0.1:1"), tmp_path / "job.yaml"
        )
        uri = "gs://pacs/site-a/2024/**.dcm"
        start = import_start(config, config.target.store_path, uri)
        async with HealthcareClient(endpoint=server.url) as client:
            await client.import_dicom(config.target.store_path, uri, config.import_.storage_class)
    finally:
        await test_server.close()
    [seen] = server.seen
    assert (seen.method, server.url + seen.path, seen.body) == (start.method, start.url, start.body)
