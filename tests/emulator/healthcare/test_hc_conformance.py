"""Every response shape checked against the discovery documents of google-api-python-client.

One scenario per API version walks the surface bulkmover uses (datasets, stores, import, export,
operations, metrics, IAM, DICOMweb, Logging) and validates each JSON answer against the schema
the discovery document names for that method.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from discovery_schema import Validator, dicom_json_errors
from hc_testkit import PROJECT, Hc, corpus, counter, unique, upload

from bulkmover.emulator.processes import RunningServer

REQUIRED = {
    "Operation": {"name", "metadata"},
    "OperationMetadata": {"apiMethodName", "createTime"},
    "Dataset": {"name"},
    "DicomStore": {"name"},
    "Status": {"code", "message"},
    "DicomStoreMetrics": {"name", "instanceCount", "seriesCount", "studyCount"},
    "LogEntry": {"logName", "resource", "operation", "severity", "timestamp", "jsonPayload"},
}
RESPONSE_TYPES = {
    "ImportDicomData": "dicom.ImportDicomDataResponse",
    "ExportDicomData": "dicom.ExportDicomDataResponse",
    "CreateDataset": "dataset.Dataset",
}


class Checker:
    def __init__(self, version: str) -> None:
        self.version = version
        self.api = Validator(f"healthcare.{version}", REQUIRED)
        self.logging = Validator("logging.v2", REQUIRED)
        self.checked: list[str] = []

    def __call__(self, value: Any, schema: str) -> None:
        assert self.api.errors(value, schema) == [], (schema, value)
        if schema == "Operation":
            self.operation(value)
        self.checked.append(schema)

    def operation(self, op: dict[str, Any]) -> None:
        meta = op["metadata"]
        prefix = f"type.googleapis.com/google.cloud.healthcare.{self.version}"
        assert meta["@type"] == f"{prefix}.OperationMetadata"
        assert self.api.errors(without_type(meta), "OperationMetadata") == [], meta
        method = meta["apiMethodName"].rsplit(".", 1)[1]
        assert meta["apiMethodName"].startswith(f"google.cloud.healthcare.{self.version}.")
        if op.get("done"):
            assert ("error" in op) != ("response" in op), op
            assert "endTime" in meta
            if "error" in op:
                assert self.api.errors(op["error"], "Status") == []
            else:
                assert op["response"]["@type"] == f"{prefix}.{RESPONSE_TYPES[method]}"
                if method == "CreateDataset":
                    assert self.api.errors(without_type(op["response"]), "Dataset") == []
        else:
            assert "done" not in op, "proto3 JSON leaves false out"
        if method != "CreateDataset":
            assert meta["logsUrl"].startswith("https://console.cloud.google.com/logs/")
            assert all(v != "0" for v in meta["counter"].values()), "zero counters are absent"

    def log_page(self, page: dict[str, Any]) -> None:
        assert self.logging.errors(page, "ListLogEntriesResponse") == [], page
        for entry in page.get("entries", []):
            assert self.logging.errors(entry, "LogEntry") == []
            payload = entry["jsonPayload"]
            assert set(payload) == {"@type", "source", "error"} or set(payload) == {
                "@type",
                "resourceName",
                "error",
            }
            assert set(payload["error"]) == {"code", "message"}
        self.checked.append("ListLogEntriesResponse")


def without_type(message: dict[str, Any]) -> dict[str, Any]:
    """An ``Any`` message without its ``@type``, to validate against the named schema."""
    return {k: v for k, v in message.items() if k != "@type"}


def assert_error_body(status: int, body: dict[str, Any], expected_status: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == status and body["error"]["status"] == expected_status
    assert body["error"]["message"]


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
async def test_every_response_matches_the_discovery_schemas(
    version: str,
    healthcare_emulator: RunningServer,
    gcs_emulator: RunningServer,
    http: aiohttp.ClientSession,
) -> None:
    hc = Hc(healthcare_emulator.url, http, version)
    check = Checker(version)
    files = corpus(studies=2, series=2, instances=3, bad=2, seed=21)
    bucket = unique("conf")
    await upload(http, gcs_emulator.url, bucket, [(f.name, f.data) for f in files])
    await upload(http, gcs_emulator.url, bucket, [])
    base = f"projects/{PROJECT}/locations/us-central1"
    dataset = unique("ds")

    check(await hc.ok("POST", f"{base}/datasets", {}, params={"datasetId": dataset}), "Operation")
    check(await hc.ok("GET", f"{base}/datasets/{dataset}"), "Dataset")
    check(await hc.ok("GET", f"{base}/datasets", params={"pageSize": "1"}), "ListDatasetsResponse")
    ds = f"{base}/datasets/{dataset}"
    store = f"{ds}/dicomStores/s1"
    created = await hc.ok(
        "POST", f"{ds}/dicomStores", {"labels": {"k": "v"}}, params={"dicomStoreId": "s1"}
    )
    check(created, "DicomStore")
    assert created == {"name": store, "labels": {"k": "v"}}
    check(await hc.ok("GET", store), "DicomStore")
    await hc.ok("POST", f"{ds}/dicomStores", {}, params={"dicomStoreId": "s2"})
    listed = await hc.ok("GET", f"{ds}/dicomStores", params={"pageSize": "1"})
    check(listed, "ListDicomStoresResponse")
    assert len(listed["dicomStores"]) == 1 and listed["nextPageToken"]

    started = await hc.start_import(store, f"gs://{bucket}/**.dcm")
    check(started, "Operation")
    done = await hc.wait(started["name"])
    check(done, "Operation")
    assert counter(done) == {"success": 12, "failure": 2, "pending": 0}

    entries = await hc.call(
        "POST",
        "",
        {
            "resourceNames": [f"projects/{PROJECT}"],
            "filter": f'operation.id="{done["name"].rsplit("/", 1)[1]}"',
            "pageSize": 1,
        },
        raw_url=f"{hc.url}/v2/entries:list",
    )
    check.log_page(entries.json())
    assert entries.json()["nextPageToken"]

    check(await hc.ok("GET", f"{store}:getDICOMStoreMetrics"), "DicomStoreMetrics")
    iam = await hc.ok(
        "POST", f"{store}:testIamPermissions", {"permissions": ["healthcare.dicomStores.import"]}
    )
    check(iam, "TestIamPermissionsResponse")

    await upload(http, gcs_emulator.url, f"{bucket}-out", [])
    export = await hc.ok(
        "POST",
        f"{store}:export",
        {
            "gcsDestination": {
                "uriPrefix": f"gs://{bucket}-out/x",
                "mimeType": "application/dicom; transfer-syntax=*",
            }
        },
    )
    check(export, "Operation")
    check(await hc.wait(export["name"]), "Operation")

    ops = await hc.ok("GET", f"{ds}/operations", params={"filter": "done=true", "pageSize": "1"})
    check(ops, "ListOperationsResponse")
    assert len(ops["operations"]) == 1 and ops["nextPageToken"]
    check(await hc.ok("POST", f"{done['name']}:cancel", {}), "Empty")

    studies = await hc.call("GET", f"{store}/dicomWeb/studies")
    assert studies.headers["Content-Type"].startswith("application/dicom+json")
    assert len(studies.json()) == 2
    for result in studies.json():
        assert dicom_json_errors(result) == []
    for level in ("series", "instances"):
        for result in await hc.ok("GET", f"{store}/dicomWeb/{level}"):
            assert dicom_json_errors(result) == []

    missing = await hc.call("GET", f"{ds}/dicomStores/nope")
    assert_error_body(missing.status, missing.json(), "NOT_FOUND")
    check(await hc.ok("DELETE", f"{ds}/dicomStores/s2"), "Empty")
    assert {"Operation", "DicomStore", "ListOperationsResponse", "ListLogEntriesResponse"} <= set(
        check.checked
    )
