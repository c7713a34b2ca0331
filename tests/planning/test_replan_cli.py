"""`plan --replan` after the bucket changed, end to end through the CLI (issue 14, item 3).

The reported case: plan, run, then files added under a directory that a `**` shard which ran
covers, one file deleted, one replaced by a new generation; `plan --replan`, `run`. The totals
must be exactly the files the source matches now, each imported once, the store holding them;
the kept shard is never imported again, and no import URI covers a file another one covers.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from cloudkit import EmulatorPair

from bulkmover.corpus import CorpusSpec, write_corpus
from bulkmover.gcs.wildcard import parse_wildcard

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SOURCE = "gs://pacs/site-a/**.dcm"
CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}"}}
import: {{source: "{source}", max_objects_per_shard: 4}}
run: {{max_operations_in_flight: 4, requests_per_minute: 60000}}
credentials: {{kind: anonymous}}
state: state/run.db
"""


def bulkmover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=180)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def bucket_names(cloud: EmulatorPair, prefix: str) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        query = urllib.parse.urlencode(
            {"prefix": prefix, **({"pageToken": token} if token else {})}
        )
        with urllib.request.urlopen(f"{cloud.gcs.url}/storage/v1/b/pacs/o?{query}") as resp:
            page = json.loads(resp.read())
        names += [item["name"] for item in page.get("items", [])]
        token = page.get("nextPageToken", "")
        if not token:
            return names


def instance_count(cloud: EmulatorPair) -> int:
    store = "/v1/projects/p/locations/l/datasets/d/dicomStores/s"
    return int(cloud.http("GET", store + ":getDICOMStoreMetrics").get("instanceCount", 0))


def test_replan_after_the_bucket_changed_counts_every_file_once(tmp_path: Path) -> None:
    cloud = EmulatorPair(tmp_path)
    try:
        spec = CorpusSpec(studies=5, series_per_study=1, instances_per_series=4, bad_files=0)
        asyncio.run(write_corpus("gs://pacs", spec, storage_endpoint=cloud.gcs.url))
        # Other instances (other UIDs), outside the source, to add and replace with later.
        extra = CorpusSpec(studies=1, series_per_study=1, instances_per_series=4, bad_files=0)
        asyncio.run(
            write_corpus("gs://pacs/extra", extra.model_copy(update={"seed": 77}),
                         storage_endpoint=cloud.gcs.url)
        )  # fmt: skip
        cloud.make_store()
        config = tmp_path / "job.yaml"
        config.write_text(CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url, source=SOURCE))

        as_json(bulkmover("plan", str(config), "--json"))
        first = bulkmover("run", str(config), "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        shards = as_json(bulkmover("status", str(config), "--json"))["shards"]
        deep = [s for s in shards if s["uri"].endswith("/**.dcm") and s["state"] == "done"]
        assert deep, [s["uri"] for s in shards]
        kept = deep[0]
        under = parse_wildcard(kept["uri"]).literal_prefix
        others = [n for n in bucket_names(cloud, "site-a/") if not n.startswith(under)]
        spare = [n for n in bucket_names(cloud, "extra/") if n.endswith(".dcm")]
        assert len(spare) >= 4 and others

        # The bucket changes: 3 files under the kept `**` shard, one in a new directory, one
        # file deleted, one replaced by another instance (a new generation).
        for i, source in enumerate(spare[:3]):
            cloud.copy(source, f"{under}late/{i}.dcm")
        cloud.copy(spare[0], "site-a/new-directory/0.dcm")  # same instance as late/0: a duplicate
        cloud.delete(others[0])
        cloud.copy(spare[3], others[1])
        before = instance_count(cloud)

        replan = as_json(bulkmover("plan", str(config), "--replan", "--json"))
        current = [n for n in bucket_names(cloud, "site-a/") if parse_wildcard(SOURCE).matches(n)]
        assert replan["totals"]["objects"] == len(current)
        second = bulkmover("run", str(config), "--json")
        assert second.returncode == 0, second.stdout + second.stderr
        result = json.loads(second.stdout)
        totals, files = result["totals"], result["files"]
        assert totals["expected"] == len(current), totals
        assert (totals["success"], totals["failure"]) == (len(current), 0), totals
        assert files == {"imported": len(current), "failed": 0, "unknown": 0, "pending": 0}

        # The kept shard was not imported again; no file is covered by two import URIs of the
        # replan; the store gained exactly the new instances (3 added, 1 replacing).
        imports = cloud.imports()
        per_uri = Counter(o["request"]["gcsSource"]["uri"] for o in imports)
        assert per_uri[kept["uri"]] == 1
        new_uris = [o["request"]["gcsSource"]["uri"] for o in imports[len(shards) :]]
        for name in current:
            assert sum(parse_wildcard(uri).matches(name) for uri in new_uris) <= 1, name
        assert instance_count(cloud) == before + 4
        verify = bulkmover("verify", str(config), "--all")
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # Every current file once in the report; the deleted one not at all; the replaced one
        # flagged changed in the ledger.
        report = as_json(bulkmover("report", str(config), "--json"))
        uris = Counter(f["uri"] for f in report["files"])
        assert uris == Counter(f"gs://pacs/{name}" for name in current)
        with sqlite3.connect(tmp_path / "state" / "run.db") as db:
            changed = db.execute(
                "SELECT d.path || o.name FROM objects AS o JOIN directories AS d"
                " ON d.id = o.directory_id WHERE o.changed"
            ).fetchall()
        assert changed == [(others[1],)]
    finally:
        cloud.stop()
