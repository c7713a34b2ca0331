"""A small synchronous GCS JSON API client for tests, speaking raw HTTP (no client library).

Both fake-gcs-server and our emulator are driven through it, so the differential tests compare
what each server answers to the very same requests.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from bulkmover.emulator.processes import RunningServer

# The ``start_gcs`` fixture: start our emulator with extra flags, ``data_dir=`` optional.
StartGcs = Callable[..., RunningServer]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Listing:
    """Every page of one listing, and their union."""

    pages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [item["name"] for page in self.pages for item in page.get("items", [])]

    @property
    def prefixes(self) -> list[str]:
        return [p for page in self.pages for p in page.get("prefixes", [])]

    @property
    def items(self) -> list[dict[str, Any]]:
        return [item for page in self.pages for item in page.get("items", [])]


def unique_bucket(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def q(name: str) -> str:
    return quote(name, safe="")


class GcsHttp:
    """One keep-alive connection to a GCS-like server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        self.url = url
        self._host, self._port = parts.hostname, parts.port
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=30)

    def close(self) -> None:
        self._conn.close()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        target = path + ("?" + urlencode(params) if params else "")
        for attempt in (1, 2):
            try:
                self._conn.request(method, target, body=body, headers=headers or {})
                response = self._conn.getresponse()
                data = response.read()
                return Answer(response.status, dict(response.getheaders()), data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # ---- buckets and objects -------------------------------------------------------------

    def create_bucket(self, name: str) -> Answer:
        answer = self.request(
            "POST",
            "/storage/v1/b",
            {"project": "test"},
            json.dumps({"name": name}).encode(),
            {"Content-Type": "application/json"},
        )
        assert answer.status == 200, answer
        return answer

    def upload(
        self, bucket: str, name: str, data: bytes, content_type: str = "text/plain"
    ) -> Answer:
        answer = self.request(
            "POST",
            f"/upload/storage/v1/b/{q(bucket)}/o",
            {"uploadType": "media", "name": name},
            data,
            {"Content-Type": content_type},
        )
        assert answer.status == 200, answer
        return answer

    def get(self, bucket: str, name: str, **params: Any) -> Answer:
        return self.request("GET", f"/storage/v1/b/{q(bucket)}/o/{q(name)}", params or None)

    def download(self, bucket: str, name: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request(
            "GET",
            f"/download/storage/v1/b/{q(bucket)}/o/{q(name)}",
            {"alt": "media"},
            None,
            headers,
        )

    def delete(self, bucket: str, name: str) -> Answer:
        return self.request("DELETE", f"/storage/v1/b/{q(bucket)}/o/{q(name)}")

    def list_page(self, bucket: str, **params: Any) -> Answer:
        return self.request("GET", f"/storage/v1/b/{q(bucket)}/o", params or None)

    def list_all(self, bucket: str, max_pages: int = 2000, **params: Any) -> Listing:
        listing = Listing()
        token = None
        for _ in range(max_pages):
            query = dict(params)
            if token:
                query["pageToken"] = token
            answer = self.list_page(bucket, **query)
            assert answer.status == 200, (answer.status, answer.body[:300])
            page = answer.json()
            listing.pages.append(page)
            token = page.get("nextPageToken")
            if not token:
                return listing
        raise AssertionError(f"listing of {bucket} {params} did not end in {max_pages} pages")


def reidentified_dicom(sample: str, patient: str, padding: int = 0) -> bytes:
    """A pydicom sample with a new patient and fresh UIDs (and ``padding`` bytes of private
    data, to make files that span several upload chunks)."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    path = get_testdata_file(sample)
    assert path is not None, sample
    ds = pydicom.dcmread(path)
    ds.PatientName = patient
    ds.PatientID = patient.upper().replace("^", "")
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if padding:
        block = ds.private_block(0x0011, "bulkmover tests", create=True)
        block.add_new(0x01, "OB", bytes(range(256)) * (padding // 256 + 1))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
