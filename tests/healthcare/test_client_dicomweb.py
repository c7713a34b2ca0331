"""HealthcareClient's store metrics, QIDO-RS search and STOW-RS upload.

Against the real Healthcare emulator process for what the API does (metrics, paging, stored,
duplicate and refused files), and against the scripted server for what the emulator never says
on cue (a whole request refused with 400, a capped page size with a Warning, 204, 5xx).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import pydicom
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hc_scripted import Answer, RecordingPolicy, ScriptedServer, Seen
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError, UsageError
from bulkmover.healthcare import HealthcareClient, StorePath
from bulkmover.healthcare.dicomweb import failure_reason, sop_uid_of


def dicom_file(study: str, series: str | None = None, sop: str | None = None) -> bytes:
    """pydicom's CT sample as a new instance of ``study``."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series or generate_uid()
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def new_store() -> StorePath:
    return StorePath("dicomweb-tests", "us-central1", f"ds-{uuid.uuid4().hex[:8]}", "store")


@pytest.fixture
async def client(healthcare_emulator: RunningServer) -> AsyncIterator[HealthcareClient]:
    async with HealthcareClient(endpoint=healthcare_emulator.url) as client:
        yield client


async def test_metrics_count_what_stow_stored(client: HealthcareClient) -> None:
    store = new_store()
    await client.ensure_dicom_store(store)
    empty = await client.get_dicom_store_metrics(store)
    assert (empty.instance_count, empty.series_count, empty.study_count) == (0, 0, 0)
    assert empty.name == store.name

    study = generate_uid()
    series = generate_uid()
    for data in (dicom_file(study, series), dicom_file(study, series), dicom_file(generate_uid())):
        assert (await client.store_instance(store, data)).outcome == "stored"
    metrics = await client.get_dicom_store_metrics(store)
    assert (metrics.instance_count, metrics.series_count, metrics.study_count) == (3, 2, 2)
    assert 0 < metrics.structured_storage_size_bytes < metrics.blob_storage_size_bytes


async def test_metrics_of_a_missing_store_is_a_one_line_404(client: HealthcareClient) -> None:
    with pytest.raises(ApiError, match="not found") as info:
        await client.get_dicom_store_metrics(new_store())
    assert info.value.status == 404 and "\n" not in str(info.value)


async def test_stow_stored_duplicate_and_not_dicom(client: HealthcareClient) -> None:
    store = new_store()
    await client.ensure_dicom_store(store)
    sop = generate_uid()
    data = dicom_file(generate_uid(), sop=sop)

    stored = await client.store_instance(store, data)
    assert (stored.outcome, stored.sop_uid, stored.code) == ("stored", sop, None)
    assert stored.in_store and stored.attempts == 1

    again = await client.store_instance(store, data)
    assert (again.outcome, again.sop_uid, again.code) == ("duplicate", sop, 6)
    assert "0x0111" in again.message and "already stored" in again.message
    assert again.in_store

    for junk in (b"scanned at the front desk, not an image\n", b"", data[:300]):
        bad = await client.store_instance(store, junk)
        assert (bad.outcome, bad.code) == ("failed", 3), bad
        assert "0xC000" in bad.message and "cannot understand" in bad.message
        assert not bad.in_store
    assert (await client.get_dicom_store_metrics(store)).instance_count == 1


async def test_qido_pages_through_a_study_and_the_store(client: HealthcareClient) -> None:
    store = new_store()
    await client.ensure_dicom_store(store)
    study, other = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(7)]
    for sop in sops:
        await client.store_instance(store, dicom_file(study, sop=sop))
    await client.store_instance(store, dicom_file(other))

    pages: list[dict[str, str]] = []
    client.listeners.append(lambda e: pages.append({}) if e.method.endswith("Instances") else None)
    found = await client.search_instances(
        store, study, params={"includefield": "00080018"}, page_size=3
    )
    assert sorted(sop_uid_of(r) or "" for r in found) == sorted(sops)
    assert len(pages) == 3  # 3 + 3 + 1
    assert all(r["0020000D"]["Value"] == [study] for r in found)

    everything = await client.search_instances(store, page_size=5)
    assert len(everything) == 8
    one = await client.search_instances(store, study, params={"SOPInstanceUID": sops[4]})
    assert [sop_uid_of(r) for r in one] == [sops[4]]
    assert await client.search_instances(store, generate_uid()) == []
    # A limit in params is the page size; an offset, where to start.
    tail = await client.search_instances(store, study, params={"limit": "2", "offset": "5"})
    assert [sop_uid_of(r) for r in tail] == [sop_uid_of(r) for r in found[5:]]
    with pytest.raises(UsageError):
        await client.search_instances(store, study, params={"limit": "none"})


async def test_qido_of_a_missing_store_raises(client: HealthcareClient) -> None:
    with pytest.raises(ApiError, match="not found") as info:
        await client.search_instances(new_store(), generate_uid())
    assert info.value.status == 404


# -- what only the scripted server says ----------------------------------------------------------

STORE = StorePath("p", "l", "d", "s")


class BytesScripted(ScriptedServer):
    """The scripted server, keeping request bodies as bytes (STOW-RS sends multipart, not JSON)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        answer = self.answers.popleft() if self.answers else self.default
        if answer.raw is not None:
            return web.Response(status=answer.status, body=answer.raw, headers=answer.headers)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)


@pytest.fixture
async def scripted() -> AsyncIterator[BytesScripted]:
    server = BytesScripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    server.url = f"http://127.0.0.1:{test_server.port}"
    yield server
    await test_server.close()


async def test_stow_whole_request_refused_is_a_failed_answer(scripted: ScriptedServer) -> None:
    scripted.then(scripted.error(400, "INVALID_ARGUMENT", "failed to parse DICOM: no DICM"))
    async with HealthcareClient(endpoint=scripted.url) as client:
        answer = await client.store_instance(STORE, b"plain text")
    assert (answer.outcome, answer.sop_uid, answer.code) == ("failed", None, 3)
    assert answer.message == "HTTP 400: failed to parse DICOM: no DICM"
    seen = scripted.seen[0]
    assert seen.path == f"/v1/{STORE.name}/dicomWeb/studies"
    assert seen.headers["Content-Type"].startswith('multipart/related; type="application/dicom"')
    assert seen.headers["Accept"] == "application/dicom+json"
    boundary = seen.headers["Content-Type"].rsplit("boundary=", 1)[1]
    assert seen.body == (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + b"plain text"
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def test_stow_retries_5xx_then_answers(scripted: ScriptedServer) -> None:
    sop = generate_uid()
    stored = {"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [sop]}}]}}
    scripted.then(scripted.error(503, "UNAVAILABLE"), Answer(200, stored))
    policy = RecordingPolicy()
    async with HealthcareClient(endpoint=scripted.url, retry=policy) as client:
        answer = await client.store_instance(STORE, dicom_file(generate_uid(), sop=sop))
    assert (answer.outcome, answer.sop_uid, answer.attempts) == ("stored", sop, 2)


async def test_stow_raises_when_retries_run_out_or_the_store_is_missing(
    scripted: ScriptedServer,
) -> None:
    scripted.then(*[scripted.error(500, "INTERNAL")] * 4, scripted.error(404, "NOT_FOUND"))
    async with HealthcareClient(endpoint=scripted.url, retry=RecordingPolicy(4)) as client:
        with pytest.raises(ApiError, match="server error after 4 attempts"):
            await client.store_instance(STORE, b"x")
        with pytest.raises(ApiError, match="not found") as info:
            await client.store_instance(STORE, b"x")
    assert info.value.status == 404


async def test_stow_2xx_naming_no_instance_is_a_bad_response(scripted: ScriptedServer) -> None:
    scripted.then(Answer(200, {}))
    async with HealthcareClient(endpoint=scripted.url) as client:
        with pytest.raises(ApiError, match="named no stored instance"):
            await client.store_instance(STORE, b"x")


def _instances(*sops: str) -> list[dict[str, object]]:
    return [{"00080018": {"vr": "UI", "Value": [sop]}} for sop in sops]


async def test_qido_follows_the_warning_of_a_capped_page(scripted: ScriptedServer) -> None:
    warning = {"Warning": '299 healthcare.googleapis.com "There are additional results"'}
    scripted.then(
        Answer(200, _instances("1.1", "1.2"), warning),  # the server capped limit=10 to 2
        Answer(200, _instances("1.3")),
    )
    async with HealthcareClient(endpoint=scripted.url) as client:
        found = await client.search_instances(STORE, "1.2.3", page_size=10)
    assert [sop_uid_of(r) for r in found] == ["1.1", "1.2", "1.3"]
    assert [s.query["offset"] for s in scripted.seen] == ["0", "2"]
    assert scripted.seen[0].path == f"/v1/{STORE.name}/dicomWeb/studies/1.2.3/instances"


async def test_qido_empty_answers(scripted: ScriptedServer) -> None:
    scripted.then(Answer(204, raw=b""), Answer(200, []), scripted.error(404, "NOT_FOUND"))
    scripted.then(Answer(200, {"name": STORE.name}))  # the store exists: the study does not
    async with HealthcareClient(endpoint=scripted.url) as client:
        assert await client.search_instances(STORE, "1.2") == []
        assert await client.search_instances(STORE) == []
        assert await client.search_instances(STORE, "1.2") == []
    assert scripted.seen[-1].path == f"/v1/{STORE.name}"


async def test_qido_refuses_a_server_that_ignores_offset(scripted: ScriptedServer) -> None:
    scripted.default = Answer(200, _instances("1.1", "1.2"))
    async with HealthcareClient(endpoint=scripted.url) as client:
        with pytest.raises(ApiError, match="does not page by offset"):
            await client.search_instances(STORE, page_size=2)
        scripted.default = Answer(200, {"not": "a list"})
        with pytest.raises(ApiError, match="DICOM JSON array"):
            await client.search_instances(STORE)


def test_failure_reasons() -> None:
    assert failure_reason(0xC000)[0] == 3 and failure_reason(0xC123)[0] == 3
    assert failure_reason(0x0111)[0] == 6
    assert failure_reason(0xA701)[0] == 8
    assert failure_reason(0x1234) == (2, "failure reason not defined by the DICOM standard")
