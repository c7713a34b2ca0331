"""dicomweb-client (the reference Python DICOMweb client) against the emulator's DICOMweb path.

Each call is one a user of that client makes against the real API's
``.../dicomStores/STORE/dicomWeb`` base URL: store, search (with ``fields``), retrieve instances,
series and studies, their metadata, frames and the bulk data the metadata points at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from hc_testkit import Hc, corpus

from bulkmover.corpus import CorpusFile
from bulkmover.emulator.processes import RunningServer

T = TypeVar("T")


async def blocking(fn: Callable[[], T]) -> T:
    """Run a blocking client call off the event loop (the test's own session shares it)."""
    return await asyncio.to_thread(fn)


def _read(f: CorpusFile) -> pydicom.Dataset:
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(f.data))


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    return [f for f in corpus(studies=2, series=2, instances=2, seed=77) if f.valid]


@pytest.fixture
async def client(hc: Hc, healthcare_emulator: RunningServer) -> DICOMwebClient:
    store = await hc.create_store()
    return DICOMwebClient(url=f"{healthcare_emulator.url}/v1/{store}/dicomWeb")


@pytest.fixture
async def stored(client: DICOMwebClient, files: list[CorpusFile]) -> DICOMwebClient:
    datasets = [pydicom.dcmread(pydicom.filebase.DicomBytesIO(f.data)) for f in files]
    await blocking(lambda: client.store_instances(datasets))
    return client


async def test_store_answers_what_was_stored(
    client: DICOMwebClient, files: list[CorpusFile], healthcare_emulator: RunningServer
) -> None:
    datasets = [pydicom.dcmread(pydicom.filebase.DicomBytesIO(f.data)) for f in files[:3]]
    result = await blocking(lambda: client.store_instances(datasets))
    refs = result.ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == [f.sop_uid for f in files[:3]]
    # The RetrieveURL keeps the port of the server (dicomweb-client sends Host without it).
    port = urlsplit(healthcare_emulator.url).port
    assert all(urlsplit(r.RetrieveURL).port == port for r in refs)
    again = await blocking(lambda: requests.get(refs[0].RetrieveURL, timeout=30))
    assert again.status_code == 200


async def test_search_with_filters_and_fields(
    stored: DICOMwebClient, files: list[CorpusFile]
) -> None:
    studies = await blocking(lambda: stored.search_for_studies())
    assert {s["0020000D"]["Value"][0] for s in studies} == {f.study_uid for f in files}
    study = files[0].study_uid
    series = await blocking(lambda: stored.search_for_series(study_instance_uid=study))
    assert len(series) == 2
    instances = await blocking(
        lambda: stored.search_for_instances(
            study_instance_uid=study, fields=["Rows", "Columns", "PatientName"]
        )
    )
    assert len(instances) == 4
    assert all("00280010" in i and "00280011" in i for i in instances)
    one = await blocking(
        lambda: stored.search_for_instances(search_filters={"SOPInstanceUID": files[1].sop_uid})
    )
    assert [i["00080018"]["Value"][0] for i in one] == [files[1].sop_uid]


async def test_includefield_selects_attributes(
    stored: DICOMwebClient, files: list[CorpusFile]
) -> None:
    study = files[0].study_uid
    plain = await blocking(
        lambda: stored.search_for_studies(search_filters={"StudyInstanceUID": study})
    )
    assert "00280010" not in plain[0]  # Rows is not a study attribute
    rows = await blocking(
        lambda: stored.search_for_studies(
            search_filters={"StudyInstanceUID": study}, fields=["Rows", "00280011"]
        )
    )
    assert "00280010" in rows[0] and "00280011" in rows[0]
    # Attributes outside the emulator's index come from the instances' files.
    more = await blocking(
        lambda: stored.search_for_instances(
            study_instance_uid=study, fields=["Manufacturer", "00080008"]
        )
    )
    expected = {(f.sop_uid, str(_read(f).Manufacturer)) for f in files if f.study_uid == study}
    assert {(i["00080018"]["Value"][0], i["00080070"]["Value"][0]) for i in more} == expected
    assert all(i["00080008"]["Value"] for i in more)
    every = await blocking(
        lambda: stored.search_for_series(study_instance_uid=study, fields=["all"])
    )
    assert all("00280010" in s and "00100020" in s for s in every)


async def test_retrieve_instance_series_and_study(
    stored: DICOMwebClient, files: list[CorpusFile]
) -> None:
    f = files[0]
    instance = await blocking(
        lambda: stored.retrieve_instance(f.study_uid, f.series_uid, f.sop_uid)
    )
    assert instance.SOPInstanceUID == f.sop_uid
    series = await blocking(lambda: stored.retrieve_series(f.study_uid, f.series_uid))
    expected_series = {g.sop_uid for g in files if g.series_uid == f.series_uid}
    assert {ds.SOPInstanceUID for ds in series} == expected_series
    study = await blocking(lambda: stored.retrieve_study(f.study_uid))
    assert {ds.SOPInstanceUID for ds in study} == {
        g.sop_uid for g in files if g.study_uid == f.study_uid
    }


async def test_retrieve_metadata_at_each_level(
    stored: DICOMwebClient, files: list[CorpusFile]
) -> None:
    f = files[0]
    study = await blocking(lambda: stored.retrieve_study_metadata(f.study_uid))
    assert {m["00080018"]["Value"][0] for m in study} == {
        g.sop_uid for g in files if g.study_uid == f.study_uid
    }
    series = await blocking(lambda: stored.retrieve_series_metadata(f.study_uid, f.series_uid))
    assert {m["00080018"]["Value"][0] for m in series} == {
        g.sop_uid for g in files if g.series_uid == f.series_uid
    }
    instance = await blocking(
        lambda: stored.retrieve_instance_metadata(f.study_uid, f.series_uid, f.sop_uid)
    )
    assert instance["00080018"]["Value"] == [f.sop_uid]


def _bulk_uris(metadata: dict[str, Any]) -> dict[str, str]:
    return {tag: e["BulkDataURI"] for tag, e in metadata.items() if "BulkDataURI" in e}


async def test_frames_and_bulkdata(stored: DICOMwebClient, files: list[CorpusFile]) -> None:
    f = files[0]
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(f.data))
    assert not ds.file_meta.TransferSyntaxUID.is_compressed
    frames = list(
        await blocking(
            lambda: stored.retrieve_instance_frames(f.study_uid, f.series_uid, f.sop_uid, [1])
        )
    )
    frame_bytes = (
        int(ds.Rows)
        * int(ds.Columns)
        * int(ds.get("SamplesPerPixel", 1))
        * (int(ds.BitsAllocated) // 8)
    )
    assert frames == [bytes(ds.PixelData)[:frame_bytes]]
    metadata = await blocking(
        lambda: stored.retrieve_instance_metadata(f.study_uid, f.series_uid, f.sop_uid)
    )
    uris = _bulk_uris(metadata)
    assert "7FE00010" in uris
    pixel = await blocking(lambda: stored.retrieve_bulkdata(uris["7FE00010"]))
    assert pixel == [bytes(ds.PixelData)]


async def test_retrieve_missing_is_404(stored: DICOMwebClient, files: list[CorpusFile]) -> None:
    f = files[0]
    with pytest.raises(requests.HTTPError) as info:
        await blocking(lambda: stored.retrieve_series_metadata(f.study_uid, "1.2.3.999"))
    assert info.value.response.status_code == 404


async def test_stow_refuses_empty_and_truncated_bodies(hc: Hc, files: list[CorpusFile]) -> None:
    store = await hc.create_store()
    path = f"{store}/dicomWeb/studies"
    multipart = 'multipart/related; type="application/dicom"; boundary=b0'
    empty_multipart = await hc.call(
        "POST", path, data=b"--b0--\r\n", headers={"Content-Type": multipart}
    )
    assert empty_multipart.status == 400
    empty = await hc.call("POST", path, data=b"", headers={"Content-Type": multipart})
    assert empty.status == 400
    truncated = b"--b0\r\nContent-Type: application/dicom\r\n\r\n" + files[0].data[:500]
    cut = await hc.call("POST", path, data=truncated, headers={"Content-Type": multipart})
    assert cut.status == 400
    assert "error" in cut.json()
    stored = await hc.call(
        "POST",
        path,
        data=b"--b0\r\nContent-Type: application/dicom\r\n\r\n" + files[0].data + b"\r\n--b0--",
        headers={"Content-Type": multipart},
    )
    assert stored.status == 200
    assert stored.headers["Content-Type"] == "application/dicom+json"


async def test_includefield_of_an_unknown_attribute_is_refused(stored: DICOMwebClient) -> None:
    with pytest.raises(requests.HTTPError) as info:
        await blocking(lambda: stored.search_for_studies(fields=["NoSuchKeyword"]))
    assert info.value.response.status_code == 400
    assert "includefield" in info.value.response.json()["error"]["message"]


async def test_frame_out_of_range_is_refused(
    stored: DICOMwebClient, files: list[CorpusFile]
) -> None:
    f = files[0]
    with pytest.raises(requests.HTTPError) as info:
        await blocking(
            lambda: list(stored.retrieve_instance_frames(f.study_uid, f.series_uid, f.sop_uid, [9]))
        )
    assert info.value.response.status_code == 400
