"""`bulkmover doctor` and `run`'s preflight as a user runs them, against the real emulators.

Every check passes on the emulators by default; each denied permission, a service agent without
access to the bucket, an empty source and an unreachable store are each reported with the fix;
a failed preflight stops `run` before anything is submitted (checked on the emulator's side).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudkit import start_gcs_emulator, start_healthcare_emulator

from bulkmover.corpus import CorpusSpec, write_corpus
from bulkmover.emulator.processes import RunningServer

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]
SPEC = CorpusSpec(studies=2, series_per_study=1, instances_per_series=2, bad_files=0, seed=3)
AGENT = "service-123456789012@gcp-sa-healthcare.iam.gserviceaccount.com"
CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}", max_attempts: 2}}
import: {{source: "{source}"}}
run: {{give_up_after_seconds: 30}}
credentials: {{kind: anonymous}}
state: state/job.db
"""


class Cloud:
    def __init__(self, tmp: Path, hc_flags: tuple[str, ...] = (), gcs_flags: tuple[str, ...] = ()):
        self.gcs: RunningServer = start_gcs_emulator(tmp / "gcs", *gcs_flags)
        try:
            self.hc: RunningServer = start_healthcare_emulator(tmp / "hc", self.gcs.url, *hc_flags)
        except BaseException:
            self.gcs.stop()
            raise

    def stop(self) -> None:
        self.hc.stop()
        self.gcs.stop()

    def call(self, url: str, method: str = "GET", body: Any = None) -> Any:
        data = (
            json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        )
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def make_store(self) -> None:
        self.call(self.hc.url + "/v1/projects/p/locations/l/datasets?datasetId=d", "POST")
        self.call(
            self.hc.url + "/v1/projects/p/locations/l/datasets/d/dicomStores?dicomStoreId=s", "POST"
        )

    def imports(self) -> list[dict[str, Any]]:
        ops = self.call(self.hc.url + "/_emulator/operations")["operations"]
        return [o for o in ops if "gcsSource" in o["request"]]


def seeded(
    tmp: Path,
    *,
    hc_flags: tuple[str, ...] = (),
    gcs_flags: tuple[str, ...] = (),
    source: str = "gs://pacs/site-a/**.dcm",
) -> tuple[Cloud, Path]:
    cloud = Cloud(tmp, hc_flags, gcs_flags)
    try:
        asyncio.run(write_corpus("gs://pacs", SPEC, storage_endpoint=cloud.gcs.url))
        cloud.make_store()
    except BaseException:
        cloud.stop()
        raise
    config = tmp / "job.yaml"
    config.write_text(CONFIG.format(hc=cloud.hc.url, gcs=cloud.gcs.url, source=source))
    return cloud, config


@pytest.fixture()
def cloud_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Cloud] = []

    def make(**kwargs: Any) -> tuple[Cloud, Path]:
        cloud, config = seeded(tmp_path / f"c{len(made)}", **kwargs)
        made.append(cloud)
        return cloud, config

    yield make
    for cloud in made:
        cloud.stop()


def bulkmover(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKMOVER, *args], capture_output=True, text=True, timeout=timeout)


def doctor_json(config: Path) -> tuple[int, dict[str, Any]]:
    result = bulkmover("doctor", str(config), "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["checks"]}


def test_every_check_passes_on_the_emulators_by_default(cloud_factory: Any) -> None:
    cloud, config = cloud_factory()
    result = bulkmover("doctor", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith(("✓", "all checks passed")) for line in lines), result.stdout
    for expected in (
        "identity",
        "store reachable",
        "permission healthcare.dicomStores.import",
        "permission healthcare.operations.get",
        "permission healthcare.operations.list",
        "permission logging.logEntries.list",
        "bucket readable",
        "source non-empty",
        "service agent reads the bucket",
    ):
        assert any(line.startswith(f"✓ {expected}:") for line in lines), (expected, result.stdout)
    assert AGENT in result.stdout
    assert cloud.imports() == []  # the policy settled it: no canary


def test_json_shape(cloud_factory: Any) -> None:
    _, config = cloud_factory()
    code, doc = doctor_json(config)
    assert code == 0 and doc["ok"] is True
    for check in doc["checks"]:
        assert set(check) == {"name", "ok", "detail", "fix"}
        assert check["ok"] is True and check["fix"] is None


@pytest.mark.parametrize(
    ("permission", "fix"),
    [
        (
            "healthcare.dicomStores.import",
            "gcloud healthcare dicom-stores add-iam-policy-binding s --dataset=d --location=l"
            " --project=p --member=user:YOUR_ACCOUNT --role=roles/healthcare.dicomEditor",
        ),
        (
            "healthcare.operations.get",
            "gcloud healthcare datasets add-iam-policy-binding d --location=l --project=p"
            " --member=user:YOUR_ACCOUNT --role=roles/healthcare.datasetViewer",
        ),
        (
            "healthcare.operations.list",
            "gcloud healthcare datasets add-iam-policy-binding d --location=l --project=p"
            " --member=user:YOUR_ACCOUNT --role=roles/healthcare.datasetViewer",
        ),
        (
            "logging.logEntries.list",
            "gcloud projects add-iam-policy-binding p --member=user:YOUR_ACCOUNT"
            " --role=roles/logging.viewer",
        ),
    ],
)
def test_each_denied_permission_is_reported_with_its_fix(
    cloud_factory: Any, permission: str, fix: str
) -> None:
    _, config = cloud_factory(hc_flags=("--deny-permissions", permission))
    code, doc = doctor_json(config)
    assert code == 1 and doc["ok"] is False
    failed = [c for c in doc["checks"] if c["ok"] is False]
    assert [c["name"] for c in failed] == [f"permission {permission}"], failed
    assert failed[0]["fix"] == fix


def test_every_denied_permission_at_once_one_line_each(cloud_factory: Any) -> None:
    denied = "healthcare.dicomStores.import,healthcare.operations.get,logging.logEntries.list"
    _, config = cloud_factory(hc_flags=("--deny-permissions", denied))
    result = bulkmover("doctor", str(config))
    assert result.returncode == 1
    for permission in denied.split(","):
        assert f"✗ permission {permission}: denied" in result.stdout, result.stdout
    assert result.stdout.count("    fix: gcloud ") == 3
    assert "3 check(s) failed" in result.stdout


def test_a_denied_permission_also_refuses_its_method(cloud_factory: Any) -> None:
    cloud, _ = cloud_factory(hc_flags=("--deny-permissions", "healthcare.dicomStores.import"))
    url = cloud.hc.url + "/v1/projects/p/locations/l/datasets/d/dicomStores/s:import"
    with pytest.raises(urllib.error.HTTPError) as refused:
        cloud.call(url, "POST", {"gcsSource": {"uri": "gs://pacs/site-a/**.dcm"}})
    assert refused.value.code == 403
    assert "healthcare.dicomStores.import" in refused.value.read().decode()


def agent_fix() -> str:
    return (
        "gcloud storage buckets add-iam-policy-binding gs://pacs"
        f" --member=serviceAccount:{AGENT} --role=roles/storage.objectViewer"
    )


def test_a_service_agent_without_bucket_access_by_the_policy(cloud_factory: Any) -> None:
    """The bucket's policy grants the agent nothing (a new real bucket): the canary import
    confirms it, and the import itself fails PERMISSION_DENIED, as on the real API."""
    cloud, config = cloud_factory(gcs_flags=("--bucket-readers", ""))
    code, doc = doctor_json(config)
    assert code == 1
    agent = by_name(doc)["service agent reads the bucket"]
    assert agent["ok"] is False and agent["fix"] == agent_fix(), agent
    assert "grants" in agent["detail"] and "canary" in agent["detail"]
    (canary,) = cloud.imports()
    assert canary["error"]["code"] == 7 and AGENT in canary["error"]["message"]


def test_a_service_agent_denied_by_the_knob_when_the_policy_cannot_be_read(
    cloud_factory: Any,
) -> None:
    cloud, config = cloud_factory(
        hc_flags=("--agent-denied-buckets", "pacs"),
        gcs_flags=("--deny-permissions", "storage.buckets.getIamPolicy"),
    )
    code, doc = doctor_json(config)
    assert code == 1
    agent = by_name(doc)["service agent reads the bucket"]
    assert agent["ok"] is False and agent["fix"] == agent_fix(), agent
    assert "IAM policy" in agent["detail"]
    assert len(cloud.imports()) == 1


def test_an_empty_source(cloud_factory: Any) -> None:
    _, config = cloud_factory(source="gs://pacs/nothing-here/**.dcm")
    code, doc = doctor_json(config)
    assert code == 1
    source = by_name(doc)["source non-empty"]
    assert source["ok"] is False and "no object matches" in source["detail"]
    assert source["fix"].startswith("fix import.source")


def test_an_unreachable_store(cloud_factory: Any) -> None:
    cloud, config = cloud_factory()
    cloud.hc.stop()
    code, doc = doctor_json(config)
    assert code == 1
    store = by_name(doc)["store reachable"]
    assert store["ok"] is False and "no answer" in store["detail"]
    assert "target.endpoint" in store["fix"]


def test_run_is_stopped_by_a_failed_preflight_and_submits_nothing(cloud_factory: Any) -> None:
    cloud, config = cloud_factory(hc_flags=("--deny-permissions", "logging.logEntries.list"))
    result = bulkmover("run", str(config), "--json")
    assert result.returncode == 1
    assert result.stderr.startswith("error: preflight: ✗ permission logging.logEntries.list")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--role=roles/logging.viewer" in result.stderr
    assert cloud.imports() == []


def test_run_no_preflight_skips_it(cloud_factory: Any) -> None:
    cloud, config = cloud_factory(gcs_flags=("--bucket-readers", ""))
    result = bulkmover("run", str(config), "--json", "--no-preflight")
    # The imports ran (and failed reading the bucket): the preflight did not stop them.
    assert cloud.imports(), result.stderr
    assert all(op["error"]["code"] == 7 for op in cloud.imports() if op.get("error"))


def test_doctor_help_has_an_example() -> None:
    result = bulkmover("doctor", "--help")
    assert result.returncode == 0 and "bulkmover doctor configs/demo.yaml" in result.stdout


def test_the_lro_quota_against_the_plans_shards(cloud_factory: Any) -> None:
    """Service Usage's dicom_store_lro_ops, read at the emulator (its requests_per_minute)."""
    _, config = cloud_factory(hc_flags=("--requests-per-minute", "5000"))
    code, doc = doctor_json(config)
    quota = by_name(doc)["LRO quota"]
    assert code == 0 and quota["ok"] is True and "5,000 starts/min" in quota["detail"]
    assert bulkmover("plan", str(config)).returncode == 0
    shards = json.loads(bulkmover("status", str(config), "--json").stdout)["totals"]["shards"]
    quota = by_name(doctor_json(config)[1])["LRO quota"]
    assert f"{shards:,} shard(s) to start" in quota["detail"]


def test_an_unreadable_quota_is_not_a_failure(cloud_factory: Any) -> None:
    _, config = cloud_factory(hc_flags=("--deny-permissions", "serviceusage.quotas.get"))
    code, doc = doctor_json(config)
    quota = by_name(doc)["LRO quota"]
    assert code == 0 and quota["ok"] is None and "serviceusage.quotas.get" in quota["detail"]
