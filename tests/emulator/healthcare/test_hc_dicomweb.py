"""DICOMweb: STOW-RS per-instance answers, QIDO-RS matching and paging, WADO-RS retrieve."""

from __future__ import annotations

import io
import uuid
from typing import Any

import aiohttp
import pydicom
import pytest
from hc_testkit import Hc, corpus

from bulkmover.corpus import CorpusFile

REFERENCED, FAILED, REASON = "00081199", "00081198", "00081197"


def multipart(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


async def stow(hc: Hc, store: str, parts: list[bytes], study: str | None = None) -> Any:
    body, content_type = multipart(parts)
    path = f"{store}/dicomWeb/studies" + (f"/{study}" if study else "")
    return await hc.call("POST", path, data=body, headers={"Content-Type": content_type})


def values(result: dict[str, Any], tag: str) -> list[Any]:
    return list(result.get(tag, {}).get("Value", []))


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    return [f for f in corpus(studies=6, series=2, instances=2, seed=51) if f.valid]


async def test_stow_answers_per_instance(hc: Hc, files: list[CorpusFile]) -> None:
    store = await hc.create_store()
    first = await stow(hc, store, [f.data for f in files[:3]])
    assert first.status == 200
    refs = values(first.json(), REFERENCED)
    assert [values(r, "00081155")[0] for r in refs] == [f.sop_uid for f in files[:3]]
    assert all(
        values(r, "00081190")[0].endswith(f"/instances/{values(r, '00081155')[0]}") for r in refs
    )
    mixed = await stow(hc, store, [files[3].data, b"not dicom", files[0].data])
    assert mixed.status == 202
    failed = values(mixed.json(), FAILED)
    assert sorted(values(f, REASON)[0] for f in failed) == [0x0111, 0xC000]
    assert len(values(mixed.json(), REFERENCED)) == 1
    only_dups = await stow(hc, store, [files[0].data])
    assert only_dups.status == 409
    single = await hc.call(
        "POST",
        f"{store}/dicomWeb/studies",
        data=files[4].data,
        headers={"Content-Type": "application/dicom"},
    )
    assert single.status == 200
    wrong_study = await stow(hc, store, [files[5].data], study="1.2.3.4")
    assert wrong_study.status == 409
    assert values(values(wrong_study.json(), FAILED)[0], REASON) == [0xA900]
    metrics = await hc.ok("GET", f"{store}:getDICOMStoreMetrics")
    assert metrics["instanceCount"] == "5"
    bad_type = await hc.call(
        "POST", f"{store}/dicomWeb/studies", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert bad_type.status == 415


@pytest.fixture
async def searchable(hc: Hc, files: list[CorpusFile]) -> str:
    store = await hc.create_store()
    answer = await stow(hc, store, [f.data for f in files])
    assert answer.status == 200
    return store


async def qido(hc: Hc, store: str, level: str, **params: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await hc.ok("GET", f"{store}/dicomWeb/{level}", params=params)
    return result


def uids(results: list[dict[str, Any]], tag: str) -> set[str]:
    return {values(r, tag)[0] for r in results}


STUDY, SERIES, SOP = "0020000D", "0020000E", "00080018"


async def test_qido_paging_covers_every_study_once(
    hc: Hc, searchable: str, files: list[CorpusFile]
) -> None:
    seen: list[str] = []
    for offset in range(0, 8, 2):
        answer = await hc.call(
            "GET", f"{searchable}/dicomWeb/studies", params={"limit": "2", "offset": str(offset)}
        )
        page = answer.json()
        seen += [values(r, STUDY)[0] for r in page]
        assert ("Warning" in answer.headers) == (offset + 2 < 6)
    assert sorted(seen) == sorted({f.study_uid for f in files})
    study = (await qido(hc, searchable, "studies", limit="1"))[0]
    assert values(study, "00201206") == [2] and values(study, "00201208") == [4]


async def test_qido_attribute_matching(hc: Hc, searchable: str, files: list[CorpusFile]) -> None:
    target = files[0]
    assert target.study_uid and target.study_date and target.modality
    by_uid = await qido(hc, searchable, "studies", StudyInstanceUID=target.study_uid)
    assert uids(by_uid, STUDY) == {target.study_uid}
    by_tag = await qido(hc, searchable, "studies", **{"0020000D": target.study_uid})
    assert by_tag == by_uid
    two = f"{files[0].study_uid},{files[-1].study_uid}"
    assert len(await qido(hc, searchable, "studies", StudyInstanceUID=two)) == 2
    patient = values(by_uid[0], "00100020")[0]
    assert target.study_uid in uids(await qido(hc, searchable, "studies", PatientID=patient), STUDY)
    dates = sorted({f.study_date for f in files if f.study_date})
    low, high = dates[1], dates[-2]
    in_range = await qido(hc, searchable, "studies", StudyDate=f"{low}-{high}")
    expected = {f.study_uid for f in files if f.study_date and low <= f.study_date <= high}
    assert uids(in_range, STUDY) == expected
    assert uids(await qido(hc, searchable, "studies", StudyDate=f"-{low}"), STUDY) == {
        f.study_uid for f in files if f.study_date and f.study_date <= low
    }
    modality = await qido(hc, searchable, "studies", ModalitiesInStudy=target.modality)
    assert uids(modality, STUDY) == {f.study_uid for f in files if f.modality == target.modality}
    name = values(by_uid[0], "00100010")[0]["Alphabetic"]
    fuzzy = await qido(hc, searchable, "studies", PatientName=name[:3].lower() + "*")
    assert target.study_uid in uids(fuzzy, STUDY)


async def test_qido_series_and_instances_levels(
    hc: Hc, searchable: str, files: list[CorpusFile]
) -> None:
    target = files[0]
    series = await hc.ok("GET", f"{searchable}/dicomWeb/studies/{target.study_uid}/series")
    assert uids(series, SERIES) == {f.series_uid for f in files if f.study_uid == target.study_uid}
    assert all(values(s, "00201209") == [2] for s in series)
    path = f"{searchable}/dicomWeb/studies/{target.study_uid}/series/{target.series_uid}/instances"
    instances = await hc.ok("GET", path)
    assert uids(instances, SOP) == {f.sop_uid for f in files if f.series_uid == target.series_uid}
    everything = await qido(hc, searchable, "instances", limit="1000")
    assert len(everything) == len(files)
    by_modality = await qido(hc, searchable, "series", Modality=str(target.modality))
    assert uids(by_modality, SERIES) == {
        f.series_uid for f in files if f.modality == target.modality
    }


@pytest.mark.parametrize(
    ("params", "status"),
    [({"NoSuchKey": "1"}, 400), ({"limit": "-1"}, 400), ({"SOPInstanceUID": "1.2"}, 400)],
)
async def test_qido_refuses_what_it_cannot_answer(
    hc: Hc, searchable: str, params: dict[str, str], status: int
) -> None:
    answer = await hc.call("GET", f"{searchable}/dicomWeb/studies", params=params)
    assert answer.status == status
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


async def test_wado_retrieves_instances_and_metadata(
    hc: Hc, searchable: str, files: list[CorpusFile], http: aiohttp.ClientSession
) -> None:
    target = files[1]
    series = f"{searchable}/dicomWeb/studies/{target.study_uid}/series/{target.series_uid}"
    path = f"{series}/instances/{target.sop_uid}"
    raw = await hc.call("GET", path, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert raw.status == 200 and raw.body == target.data
    implicit = await hc.call(
        "GET", path, headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2"}
    )
    ds = pydicom.dcmread(io.BytesIO(implicit.body))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert ds.SOPInstanceUID == target.sop_uid
    async with http.get(hc.path(path)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("multipart/related")
        reader = aiohttp.MultipartReader.from_response(resp)
        part = await reader.next()
        assert isinstance(part, aiohttp.BodyPartReader)
        body = await part.read()
    assert pydicom.dcmread(io.BytesIO(body)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    [metadata] = await hc.ok("GET", f"{path}/metadata")
    assert values(metadata, SOP) == [target.sop_uid]
    assert "BulkDataURI" in metadata["7FE00010"]
    missing = await hc.call("GET", path.replace(str(target.sop_uid), "1.2.3"))
    assert missing.status == 404
    not_uid = await hc.call("GET", path.replace(str(target.sop_uid), "abc"))
    assert not_uid.status == 400 and "DICOM UID" in not_uid.json()["error"]["message"]
    refused = await hc.call("GET", path, headers={"Accept": "image/gif"})
    assert refused.status == 406
