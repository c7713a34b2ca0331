"""The local cloud for the client tests: a bucket of re-identified DICOM files and Healthcare
emulator processes started with the knobs a test needs."""

from __future__ import annotations

import io
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server

SAMPLES = ("CT_small.dcm", "MR_small.dcm")


@dataclass(frozen=True)
class SeededBucket:
    bucket: str
    good: list[str]  # object names of valid DICOM files
    bad: list[str]  # object names of files that are not DICOM

    def uri(self, pattern: str) -> str:
        return f"gs://{self.bucket}/{pattern}"


def reidentified(sample: str, index: int) -> bytes:
    """A pydicom sample with fresh UIDs and a synthetic patient, so every file is a new instance."""
    path = get_testdata_file(sample)
    assert path is not None
    ds = pydicom.dcmread(path)
    ds.PatientName = f"Client^Test{index}"
    ds.PatientID = f"CLIENT-{index:04d}"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _post(url: str, data: bytes, content_type: str) -> None:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status


def seed_bucket(gcs_url: str, bucket: str, good: int = 6) -> SeededBucket:
    """Create ``bucket`` with ``good`` DICOM files and one text file under ``batch1/``."""
    _post(
        f"{gcs_url}/storage/v1/b?project=test",
        json.dumps({"name": bucket}).encode(),
        "application/json",
    )
    names = []
    for i in range(good):
        name = f"batch1/study{i}/image{i}.dcm"
        upload = (
            f"{gcs_url}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
        )
        _post(upload, reidentified(SAMPLES[i % len(SAMPLES)], i), "application/dicom")
        names.append(name)
    bad = "batch1/notes.dcm"
    upload = f"{gcs_url}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(bad, safe='')}"
    _post(upload, b"scanned at the front desk, not an image\n", "text/plain")
    return SeededBucket(bucket, names, [bad])


def start_healthcare(data_dir: Path, gcs_url: str, *flags: str) -> RunningServer:
    """``python -m bulkmover.emulator.healthcare`` on a free port, in-process workers."""
    argv = python_module_argv(
        "bulkmover.emulator.healthcare",
        "--port", "0",
        "--data-dir", str(data_dir),
        "--gcs-endpoint", gcs_url,
        "--workers", "0",
        *flags,
    )  # fmt: skip
    return start_server(argv, name="healthcare-emulator")


def admin_operations(server_url: str) -> list[dict[str, object]]:
    """Every operation the emulator ever started, with its request (the emulator's side)."""
    with urllib.request.urlopen(f"{server_url}/_emulator/operations", timeout=30) as response:
        operations: list[dict[str, object]] = json.load(response)["operations"]
    return operations
