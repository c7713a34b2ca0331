"""Google's discovery client (google-api-python-client) on DICOMweb, store patch and dataset
delete: methods a user of that client reaches beyond import and export.

The client adds ``alt=json`` (and, when asked, ``prettyPrint``, ``quotaUser`` ...) to every
request; the API reads them as system parameters, never as QIDO search keys.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from hc_testkit import Hc, corpus, unique
from test_hc_dicomweb import stow

from bulkmover.emulator.processes import RunningServer


def _service(endpoint: str) -> Any:
    return build(
        "healthcare",
        "v1",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        static_discovery=True,
        cache_discovery=False,
    )


def _drive(endpoint: str, store: str, study: str) -> dict[str, Any]:
    stores = _service(endpoint).projects().locations().datasets().dicomStores()
    found = stores.searchForStudies(parent=store, dicomWebPath="studies").execute()
    request = stores.searchForInstances(parent=store, dicomWebPath="instances")
    request.uri += "&prettyPrint=false&quotaUser=me&fields=x&%24.xgafv=2"
    instances = request.execute()
    metadata = (
        stores.studies()
        .retrieveMetadata(parent=store, dicomWebPath=f"studies/{study}/metadata")
        .execute()
    )
    return {"studies": found, "instances": instances, "metadata": metadata}


async def test_search_and_metadata_through_the_discovery_client(
    hc: Hc, healthcare_emulator: RunningServer
) -> None:
    files = [f for f in corpus(studies=2, series=1, instances=2, seed=91) if f.valid]
    store = await hc.create_store()
    assert (await stow(hc, store, [f.data for f in files])).status == 200
    result = await asyncio.to_thread(_drive, healthcare_emulator.url, store, files[0].study_uid)
    assert {s["0020000D"]["Value"][0] for s in result["studies"]} == {f.study_uid for f in files}
    assert len(result["instances"]) == len(files)
    assert len(result["metadata"]) == 2


def _patch_and_delete(endpoint: str, dataset: str, store: str) -> dict[str, Any]:
    datasets = _service(endpoint).projects().locations().datasets()
    stores = datasets.dicomStores()
    labelled = stores.patch(
        name=store, updateMask="labels", body={"labels": {"site": "a", "tier": "gold"}}
    ).execute()
    one_label = stores.patch(name=store, updateMask="labels.tier", body={"labels": {}}).execute()
    try:
        stores.patch(name=store, body={"labels": {"x": "y"}}).execute()
        no_mask = 200
    except HttpError as exc:
        no_mask = exc.resp.status
    deleted = datasets.delete(name=dataset).execute()
    statuses = {}
    for label, call in (
        ("dataset", datasets.get(name=dataset)),
        ("store", stores.get(name=store)),
    ):
        try:
            call.execute()
            statuses[label] = 200
        except HttpError as exc:
            statuses[label] = exc.resp.status
    return {
        "labelled": labelled,
        "one_label": one_label,
        "no_mask": no_mask,
        "deleted": deleted,
        "after": statuses,
    }


async def test_patch_store_labels_and_delete_dataset(
    hc: Hc, healthcare_emulator: RunningServer
) -> None:
    dataset_id = unique("ds")
    store = await hc.create_store(dataset=dataset_id)
    dataset = store.rsplit("/dicomStores/", 1)[0]
    files = [f for f in corpus(studies=1, seed=92) if f.valid]
    assert (await stow(hc, store, [f.data for f in files])).status == 200
    result = await asyncio.to_thread(_patch_and_delete, healthcare_emulator.url, dataset, store)
    assert result["labelled"]["labels"] == {"site": "a", "tier": "gold"}
    assert result["one_label"]["labels"] == {"site": "a"}
    assert result["no_mask"] == 400
    assert result["deleted"] == {}
    assert result["after"] == {"dataset": 404, "store": 404}
    again = await hc.call(
        "POST",
        f"{dataset.split('/datasets/')[0]}/datasets",
        params={"datasetId": dataset_id},
        body={},
    )
    assert again.status == 200, again.body
    assert json.loads(again.body)["done"]


@pytest.mark.parametrize(
    "param", ["alt=json", "prettyPrint=false", "quotaUser=x", "key=k", "callback=c"]
)
async def test_qido_ignores_system_parameters(hc: Hc, param: str) -> None:
    store = await hc.create_store()
    answer = await hc.call("GET", f"{store}/dicomWeb/studies?{param}")
    assert answer.status == 200, answer.body
