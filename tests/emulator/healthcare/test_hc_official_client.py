"""The official client (google-api-python-client, static discovery) drives the emulator.

If the emulator's paths, verbs or JSON differed from the real API's, the client built from the
real discovery document would fail here: create dataset and store, import, poll, export.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from hc_testkit import corpus, list_names, unique, upload

from bulkmover.emulator.processes import RunningServer


def _drive(endpoint: str, bucket: str) -> dict[str, Any]:
    """The whole scenario, synchronous (the client blocks), run in a thread."""
    service = build(
        "healthcare",
        "v1",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        static_discovery=True,
        cache_discovery=False,
    )
    datasets = service.projects().locations().datasets()
    parent = "projects/official/locations/europe-west4"
    dataset_id = unique("ds")
    created = datasets.create(parent=parent, datasetId=dataset_id, body={}).execute()
    assert created["done"] and created["response"]["name"] == f"{parent}/datasets/{dataset_id}"
    dataset = f"{parent}/datasets/{dataset_id}"
    stores = datasets.dicomStores()
    store = stores.create(parent=dataset, dicomStoreId="store", body={}).execute()["name"]
    assert stores.get(name=store).execute()["name"] == store

    operations = datasets.operations()

    def wait(name: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            op: dict[str, Any] = operations.get(name=name).execute()
            if op.get("done"):
                return op
            time.sleep(0.05)
        raise AssertionError(f"{name} did not finish")

    started = stores.import_(
        name=store, body={"gcsSource": {"uri": f"gs://{bucket}/in/**.dcm"}}
    ).execute()
    imported = wait(started["name"])
    exported = wait(
        stores.export(
            name=store,
            body={
                "gcsDestination": {
                    "uriPrefix": f"gs://{bucket}/out",
                    "mimeType": "application/dicom; transfer-syntax=*",
                }
            },
        ).execute()["name"]
    )
    listed = operations.list(name=dataset, filter="done=true").execute()
    metrics = stores.getDICOMStoreMetrics(name=store).execute()
    try:
        stores.get(name=f"{dataset}/dicomStores/missing").execute()
        missing_status = 200
    except HttpError as exc:
        missing_status = exc.resp.status
    return {
        "imported": imported,
        "exported": exported,
        "listed": listed,
        "metrics": metrics,
        "missing_status": missing_status,
    }


async def test_official_client_imports_and_exports(
    healthcare_emulator: RunningServer, gcs_emulator: RunningServer, http: aiohttp.ClientSession
) -> None:
    files = corpus(studies=2, series=1, instances=4, bad=1, seed=31)
    bucket = unique("official")
    await upload(http, gcs_emulator.url, bucket, [(f"in/{f.name}", f.data) for f in files])
    result = await asyncio.to_thread(_drive, healthcare_emulator.url, bucket)
    counter = result["imported"]["metadata"]["counter"]
    assert counter == {"success": "8", "failure": "1"}
    assert result["exported"]["metadata"]["counter"] == {"success": "8"}
    methods = [o["metadata"]["apiMethodName"] for o in result["listed"]["operations"]]
    assert [m.rsplit(".", 1)[1] for m in methods] == [
        "CreateDataset",
        "ImportDicomData",
        "ExportDicomData",
    ]
    assert result["metrics"]["instanceCount"] == "8"
    assert result["missing_status"] == 404
    exported = await list_names(http, gcs_emulator.url, bucket, "out/")
    expected = {f"out/{f.study_uid}/{f.series_uid}/{f.sop_uid}.dcm" for f in files if f.valid}
    assert set(exported) == expected
