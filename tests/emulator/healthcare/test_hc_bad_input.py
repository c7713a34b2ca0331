"""Bad input gets the real API's status and a helpful message; the server and its data survive."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from hc_testkit import PROJECT, Hc, unique
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkmover.emulator.processes import RunningServer


@pytest.fixture
async def store(hc: Hc) -> str:
    return await hc.create_store()


async def test_bodies_the_api_rejects(hc: Hc, store: str) -> None:
    cases = [
        (b"{not json", "Invalid JSON payload"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"gcsSorce": {"uri": "gs://bkt/x"}}).encode(), 'Unknown name "gcsSorce"'),
        (json.dumps({"gcsSource": {"uri": 5}}).encode(), "gcsSource.uri"),
        (json.dumps({"gcsSource": {"uri": "gs://bkt/a/**/b"}}).encode(), "at the end of the path"),
        (json.dumps({"gcsSource": {}}).encode(), "required"),
        (
            json.dumps(
                {
                    "gcsSource": {"uri": "gs://bkt/x"},
                    "blobStorageSettings": {"blobStorageClass": "HOT"},
                }
            ).encode(),
            "blobStorageClass",
        ),
    ]
    for data, fragment in cases:
        answer = await hc.call("POST", f"{store}:import", data=data)
        assert answer.status == 400, data
        error = answer.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and fragment in error["message"], error
    ok = await hc.call(
        "POST",
        f"{store}:import",
        {
            "gcsSource": {"uri": "gs://bkt/x.dcm"},
            "blobStorageSettings": {"blobStorageClass": "ARCHIVE"},
        },
    )
    assert ok.status == 200


async def test_names_the_api_rejects(hc: Hc, store: str) -> None:
    base = f"projects/{PROJECT}/locations/l"
    dataset = store.split("/dicomStores/")[0]
    cases = [
        ("GET", f"{base}/datasets/{unique('nope')}", 404, "NOT_FOUND", "create it with"),
        ("GET", f"{dataset}/dicomStores/nope", 404, "NOT_FOUND", "dicomStoreId=nope"),
        ("POST", f"{dataset}/dicomStores/nope:import", 404, "NOT_FOUND", "not found"),
        ("POST", f"{base}/datasets?datasetId=bad%20id", 400, "INVALID_ARGUMENT", "datasetId"),
        ("POST", f"{base}/datasets", 400, "INVALID_ARGUMENT", "datasetId"),
        (
            "POST",
            f"{dataset}/dicomStores?dicomStoreId={store.rsplit('/', 1)[1]}",
            409,
            "ALREADY_EXISTS",
            "",
        ),
        ("GET", f"{dataset}/operations/123", 404, "NOT_FOUND", "operation"),
        ("GET", f"{dataset}/operations?filter=name%3Dx", 400, "INVALID_ARGUMENT", "done=true"),
        ("GET", f"{dataset}/operations?pageToken=zz", 400, "INVALID_ARGUMENT", "pageToken"),
        ("GET", f"{store}/dicomWeb/studies/1.2.x/series", 400, "INVALID_ARGUMENT", "DICOM UID"),
        ("GET", f"{base}/nothing/here", 404, "NOT_FOUND", "no such API method"),
        ("PUT", store, 501, "UNIMPLEMENTED", "not supported"),
    ]
    for method, path, status, name, fragment in cases:
        answer = await hc.call(method, path)
        assert answer.status == status, (method, path, answer.body)
        error = answer.json()["error"]
        assert error["status"] == name and fragment in error["message"], (path, error)
    parent, dataset_id = dataset.rsplit("/datasets/", 1)
    again = await hc.call("POST", f"{parent}/datasets", params={"datasetId": dataset_id})
    assert again.status == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"
    assert (await hc.call("GET", store)).status == 200, "refused requests changed nothing"


async def test_logging_refusals(hc: Hc) -> None:
    url = f"{hc.url}/v2/entries:list"
    for body, fragment in [
        ({}, "resourceNames is required"),
        ({"resourceNames": ["folders/1"]}, "projects/PROJECT_ID"),
        ({"resourceNames": [f"projects/{PROJECT}"], "filter": "a=1 or b=2"}, "upper case"),
        ({"resourceNames": [f"projects/{PROJECT}"], "orderBy": "severity"}, "orderBy"),
        ({"resourceNames": [f"projects/{PROJECT}"], "pageToken": "@@"}, "pageToken"),
    ]:
        answer = await hc.call("POST", "", body, raw_url=url)
        assert answer.status == 400 and fragment in answer.json()["error"]["message"], body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"gcsSource": st.fixed_dictionaries({"uri": st.text(alphabet="gs:/ab*?.", max_size=16)})}
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, method=st.sampled_from([":import", ":export", ":testIamPermissions"]))
def test_random_bodies_never_crash(
    healthcare_emulator: RunningServer, body: bytes, method: str
) -> None:
    parts = urlsplit(healthcare_emulator.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    store = f"/v1/projects/{PROJECT}/locations/fuzz/datasets/fuzz/dicomStores/fuzz"
    try:
        for path, data in (
            (f"/v1/projects/{PROJECT}/locations/fuzz/datasets?datasetId=fuzz", b""),
            (
                f"/v1/projects/{PROJECT}/locations/fuzz/datasets/fuzz/dicomStores?dicomStoreId=fuzz",
                b"",
            ),
            (store + method, body),
        ):
            conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
        assert response.status in (200, 400, 404), payload
        if response.status != 200:
            assert json.loads(payload)["error"]["message"]
        conn.request("GET", store)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
