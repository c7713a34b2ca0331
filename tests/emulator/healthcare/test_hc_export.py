"""Export: object names, formats, filter files, per-instance failures in the log."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pydicom
import pytest
from hc_testkit import Hc, corpus, counter, get_object, list_names, make_bucket, put_object, unique
from pydicom.data import get_testdata_file
from test_hc_dicomweb import stow

from bulkmover.corpus import CorpusFile
from bulkmover.emulator.processes import RunningServer

EXPORT_LOG_TYPE = "type.googleapis.com/google.cloud.healthcare.logging.ExportDicomLogEntry"


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    return [f for f in corpus(studies=3, series=2, instances=2, seed=61) if f.valid]


@pytest.fixture
async def filled(hc: Hc, files: list[CorpusFile]) -> str:
    store = await hc.create_store()
    assert (await stow(hc, store, [f.data for f in files])).status == 200
    return store


async def export(hc: Hc, store: str, body: dict[str, object]) -> dict[str, object]:
    started = await hc.ok("POST", f"{store}:export", body)
    return await hc.wait(started["name"])


async def test_filter_file_selects_studies_series_and_instances(
    hc: Hc, http: aiohttp.ClientSession, gcs_emulator: RunningServer, filled: str,
    files: list[CorpusFile],
) -> None:  # fmt: skip
    bucket = unique("exp")
    await make_bucket(http, gcs_emulator.url, bucket)
    study, series, instance = files[0], files[4], files[9]
    lines = [
        f"/studies/{study.study_uid}",
        f"/studies/{series.study_uid}/series/{series.series_uid}",
        f"/studies/{instance.study_uid}/series/{instance.series_uid}/instances/{instance.sop_uid}",
        "/studies/1.2.3.999",
    ]
    await put_object(http, gcs_emulator.url, bucket, "filters/f.txt", "\r\n".join(lines).encode())
    op = await export(
        hc,
        filled,
        {
            "gcsDestination": {
                "uriPrefix": f"gs://{bucket}/out/",
                "mimeType": "application/dicom; transfer-syntax=*",
            },
            "filterConfig": {"resourcePathsGcsUri": f"gs://{bucket}/filters/f.txt"},
        },
    )
    selected = [
        f for f in files
        if f.study_uid == study.study_uid or f.series_uid == series.series_uid or f is instance
    ]  # fmt: skip
    assert counter(op) == {"success": len(selected), "failure": 1, "pending": 0}
    names = await list_names(http, gcs_emulator.url, bucket, "out/")
    assert sorted(names) == sorted(
        f"out/{f.study_uid}/{f.series_uid}/{f.sop_uid}.dcm" for f in selected
    )
    exported = await get_object(http, gcs_emulator.url, bucket, names[0])
    assert exported in {f.data for f in selected}
    [entry] = await hc.log_entries(str(op["name"]))
    assert entry["jsonPayload"]["@type"] == EXPORT_LOG_TYPE
    assert entry["jsonPayload"]["resourceName"].endswith("/dicomWeb/studies/1.2.3.999")
    assert entry["jsonPayload"]["error"]["code"] == 5


@pytest.mark.parametrize(
    ("mime", "extension", "check"),
    [
        ("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", ".dcm", "explicit"),
        ("application/dicom; transfer-syntax=1.2.840.10008.1.2", ".dcm", "implicit"),
        ("image/png", ".png", "png"),
        ("image/jpeg", ".jpg", "jpeg"),
        ("application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1", "", "raw"),
    ],
)
async def test_formats(
    mime: str, extension: str, check: str, hc: Hc, http: aiohttp.ClientSession,
    gcs_emulator: RunningServer, filled: str, files: list[CorpusFile],
) -> None:  # fmt: skip
    bucket = unique("fmt")
    await make_bucket(http, gcs_emulator.url, bucket)
    op = await export(
        hc, filled, {"gcsDestination": {"uriPrefix": f"gs://{bucket}", "mimeType": mime}}
    )
    assert counter(op) == {"success": len(files), "failure": 0, "pending": 0}
    target = files[0]
    name = f"{target.study_uid}/{target.series_uid}/{target.sop_uid}{extension}"
    data = await get_object(http, gcs_emulator.url, bucket, name)
    original = pydicom.dcmread(io.BytesIO(target.data))
    if check in ("explicit", "implicit"):
        ds = pydicom.dcmread(io.BytesIO(data))
        syntax = "1.2.840.10008.1.2.1" if check == "explicit" else "1.2.840.10008.1.2"
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert (ds.pixel_array == original.pixel_array).all()
    elif check == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif check == "jpeg":
        assert data.startswith(b"\xff\xd8")
    else:
        assert data == original.PixelData[: len(data)] and len(data) == len(original.PixelData)


@pytest.fixture(scope="module")
def samples() -> list[bytes]:
    """pydicom samples: a 2-frame RLE image and an RT plan (no pixel data)."""
    names = ("SC_rgb_rle_2frame.dcm", "rtplan.dcm")
    return [Path(get_testdata_file(n)).read_bytes() for n in names]  # type: ignore[arg-type]


async def test_multi_frame_and_pixel_less_instances(
    samples: list[bytes], hc: Hc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    store = await hc.create_store()
    assert (await stow(hc, store, samples)).status == 200
    bucket = unique("frames")
    await make_bucket(http, gcs_emulator.url, bucket)
    op = await export(
        hc, store, {"gcsDestination": {"uriPrefix": f"gs://{bucket}/p", "mimeType": "image/png"}}
    )
    assert counter(op) == {"success": 1, "failure": 1, "pending": 0}
    names = await list_names(http, gcs_emulator.url, bucket, "p/")
    assert [n.rsplit("/", 1)[1] for n in sorted(names)] == ["1.png", "2.png"]
    [entry] = await hc.log_entries(str(op["name"]))
    assert "no pixel data" in entry["jsonPayload"]["error"]["message"]


async def test_export_refusals(
    hc: Hc, http: aiohttp.ClientSession, gcs_emulator: RunningServer, filled: str
) -> None:
    bucket = unique("refuse")
    await make_bucket(http, gcs_emulator.url, bucket)
    await put_object(
        http, gcs_emulator.url, bucket, "bad.txt", b"/studies/1.2\n/studies/1.2/serie/3\n"
    )
    dest = {"uriPrefix": f"gs://{bucket}/out"}
    jpeg = "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"

    def filtered(name: str) -> dict[str, object]:
        return {
            "gcsDestination": dest,
            "filterConfig": {"resourcePathsGcsUri": f"gs://{bucket}/{name}"},
        }

    cases: list[tuple[dict[str, object], str]] = [
        (filtered("bad.txt"), "line 2"),
        (filtered("none.txt"), "not found"),
        ({"gcsDestination": {**dest, "mimeType": jpeg}}, "documented"),
        ({"gcsDestination": {**dest, "mimeType": "video/mp4"}}, "unsupported"),
        ({"gcsDestination": {"uriPrefix": "bucket/x"}}, "gs://"),
        ({"bigqueryDestination": {"tableUri": "bq://p.d.t"}}, "bigqueryDestination"),
        ({}, "gcsDestination is required"),
    ]
    for body, fragment in cases:
        answer = await hc.call("POST", f"{filled}:export", body)
        assert answer.status == 400, body
        assert fragment in answer.json()["error"]["message"], answer.json()
    missing_bucket = await export(
        hc, filled, {"gcsDestination": {"uriPrefix": f"gs://{unique('none')}/x"}}
    )
    assert missing_bucket["error"]["code"] == 5
