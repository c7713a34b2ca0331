"""Upload protocols, downloads, preconditions, patch/copy and the bulk path, over raw HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import google_crc32c
import pytest
from gcs_testkit import GcsHttp, reidentified_dicom, unique_bucket

from bulkmover.emulator.gcs import BulkRow, bulk_load_sync, synthetic_content
from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import EmulatorError


@pytest.fixture
def client(gcs_emulator: RunningServer) -> Iterator[GcsHttp]:
    c = GcsHttp(gcs_emulator.url)
    yield c
    c.close()


@pytest.fixture
def bucket(client: GcsHttp) -> str:
    name = unique_bucket("uploads")
    client.create_bucket(name)
    return name


def _multipart(metadata: dict[str, object], data: bytes, boundary: str = "b0undary") -> bytes:
    return (
        (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(metadata)}\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_multipart_upload_keeps_metadata_and_checks_hashes(client: GcsHttp, bucket: str) -> None:
    data = reidentified_dicom("CT_small.dcm", "Multi^Part")
    meta = {
        "name": "a/ct.dcm",
        "metadata": {"site": "x"},
        "md5Hash": _b64(hashlib.md5(data).digest()),
    }
    headers = {"Content-Type": "multipart/related; boundary=b0undary"}
    path = f"/upload/storage/v1/b/{bucket}/o"
    done = client.request(
        "POST", path, {"uploadType": "multipart"}, _multipart(meta, data), headers
    )
    assert done.status == 200
    resource = done.json()
    assert resource["name"] == "a/ct.dcm" and resource["contentType"] == "application/dicom"
    assert resource["metadata"] == {"site": "x"} and resource["size"] == str(len(data))
    crc = google_crc32c.value(data).to_bytes(4, "big")
    assert resource["crc32c"] == _b64(crc)
    assert client.download(bucket, "a/ct.dcm").body == data

    meta["md5Hash"] = _b64(hashlib.md5(b"other").digest())
    meta["name"] = "a/bad.dcm"
    bad = client.request("POST", path, {"uploadType": "multipart"}, _multipart(meta, data), headers)
    assert bad.status == 400 and "MD5" in bad.json()["error"]["message"]
    assert client.get(bucket, "a/bad.dcm").status == 404


def test_resumable_upload_in_chunks(client: GcsHttp, bucket: str) -> None:
    data = reidentified_dicom("MR_small.dcm", "Res^Umable", padding=600_000)
    size = len(data)
    start = client.request(
        "POST",
        f"/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "resumable"},
        json.dumps({"name": "r/mr.dcm", "contentType": "application/dicom"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert start.status == 200
    session = start.headers["Location"].split(client.url, 1)[1]
    empty = client.request("PUT", session, headers={"Content-Range": f"bytes */{size}"})
    assert empty.status == 308 and "Range" not in empty.headers
    one = client.request(
        "PUT", session, body=data[:262144], headers={"Content-Range": "bytes 0-262143/*"}
    )
    assert one.status == 308 and one.headers["Range"] == "bytes=0-262143"
    gap = client.request(
        "PUT", session, body=data[300000:300010], headers={"Content-Range": "bytes 300000-300009/*"}
    )
    assert gap.status == 400
    # A retried chunk that overlaps what was received: the overlap is skipped.
    two = client.request(
        "PUT", session, body=data[200000:524288], headers={"Content-Range": "bytes 200000-524287/*"}
    )
    assert two.status == 308 and two.headers["Range"] == "bytes=0-524287"
    short = client.request(
        "PUT",
        session,
        body=data[524288:524290],
        headers={"Content-Range": f"bytes 524288-524299/{size}"},
    )
    assert short.status == 400
    last = client.request(
        "PUT",
        session,
        body=data[524288:],
        headers={"Content-Range": f"bytes 524288-{size - 1}/{size}"},
    )
    assert last.status == 200
    assert last.json()["size"] == str(size) and last.json()["contentType"] == "application/dicom"
    assert client.download(bucket, "r/mr.dcm").body == data
    again = client.request("PUT", session, headers={"Content-Range": f"bytes */{size}"})
    assert again.status == 200 and again.json()["generation"] == last.json()["generation"]


def test_resumable_upload_can_be_cancelled(client: GcsHttp, bucket: str) -> None:
    start = client.request(
        "POST", f"/upload/storage/v1/b/{bucket}/o", {"uploadType": "resumable", "name": "c"}
    )
    session = start.headers["Location"].split(client.url, 1)[1]
    assert client.request("DELETE", session).status == 499
    assert client.request("PUT", session, body=b"x").status == 404
    assert client.get(bucket, "c").status == 404


def test_preconditions_and_generations(client: GcsHttp, bucket: str) -> None:
    path = f"/upload/storage/v1/b/{bucket}/o"
    first = client.request(
        "POST", path, {"uploadType": "media", "name": "p", "ifGenerationMatch": "0"}, b"1"
    )
    assert first.status == 200
    gen = first.json()["generation"]
    clash = client.request(
        "POST", path, {"uploadType": "media", "name": "p", "ifGenerationMatch": "0"}, b"2"
    )
    assert clash.status == 412
    second = client.request(
        "POST", path, {"uploadType": "media", "name": "p", "ifGenerationMatch": gen}, b"2"
    )
    assert second.status == 200 and int(second.json()["generation"]) > int(gen)
    assert client.get(bucket, "p", generation=gen).status == 404
    assert client.get(bucket, "p", generation=second.json()["generation"]).status == 200
    assert client.get(bucket, "p", ifGenerationNotMatch=second.json()["generation"]).status == 304
    assert (
        client.request("DELETE", f"/storage/v1/b/{bucket}/o/p", {"ifGenerationMatch": gen}).status
        == 412
    )
    assert (
        client.request(
            "DELETE",
            f"/storage/v1/b/{bucket}/o/p",
            {"ifGenerationMatch": second.json()["generation"]},
        ).status
        == 204
    )


def test_patch_copy_and_rewrite(client: GcsHttp, bucket: str) -> None:
    client.upload(bucket, "src/a b.dcm", b"dicom bytes", "application/dicom")
    patched = client.request(
        "PATCH",
        f"/storage/v1/b/{bucket}/o/src%2Fa%20b.dcm",
        body=json.dumps(
            {"metadata": {"k": "v", "gone": None}, "contentType": "text/plain"}
        ).encode(),
        headers={"Content-Type": "application/json"},
    ).json()
    assert patched["metadata"] == {"k": "v"} and patched["metageneration"] == "2"
    assert patched["contentType"] == "text/plain"
    other = unique_bucket("copy-dst")
    client.create_bucket(other)
    copied = client.request(
        "POST", f"/storage/v1/b/{bucket}/o/src%2Fa%20b.dcm/copyTo/b/{other}/o/dst%2Fcopy"
    )
    assert copied.status == 200 and copied.json()["bucket"] == other
    rewritten = client.request(
        "POST", f"/storage/v1/b/{bucket}/o/src%2Fa%20b.dcm/rewriteTo/b/{bucket}/o/r"
    )
    assert rewritten.status == 200 and rewritten.json()["done"] is True
    for b, name in ((other, "dst/copy"), (bucket, "r")):
        got = client.download(b, name)
        assert got.body == b"dicom bytes" and got.headers["Content-Type"] == "text/plain"


def test_download_headers_and_ranges(client: GcsHttp, bucket: str) -> None:
    data = bytes(range(256)) * 10
    client.upload(bucket, "r.bin", data, "application/octet-stream")
    full = client.download(bucket, "r.bin")
    assert full.status == 200 and full.body == data
    md5 = _b64(hashlib.md5(data).digest())
    assert f"md5={md5}" in full.headers["x-goog-hash"]
    assert full.headers["x-goog-stored-content-length"] == str(len(data))
    part = client.download(bucket, "r.bin", {"Range": "bytes=100-199"})
    assert part.status == 206 and part.body == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = client.download(bucket, "r.bin", {"Range": "bytes=-10"})
    assert tail.status == 206 and tail.body == data[-10:]
    media = client.get(bucket, "r.bin", alt="media")
    assert media.status == 200 and media.body == data


def test_bulk_load_synthetic_and_given_contents(
    client: GcsHttp, gcs_emulator: RunningServer
) -> None:
    bucket = unique_bucket("bulk")  # created by the bulk load
    rows: list[BulkRow | dict[str, object]] = [
        BulkRow(f"s/{i:04d}.dcm", size=1000 + i % 3) for i in range(2500)
    ]
    rows.append(BulkRow("given/ü x.txt", content=b"given bytes", content_type="text/plain"))
    rows.append({"name": "given/dict", "content_b64": _b64(b"from a dict")})
    assert bulk_load_sync(gcs_emulator.url, bucket, rows) == 2502
    listing = client.list_all(bucket, maxResults=1000)
    assert len(listing.names) == 2502 and len(listing.pages) == 3
    assert client.download(bucket, "s/0001.dcm").body == synthetic_content(1001)
    meta = client.get(bucket, "s/0002.dcm").json()
    assert meta["md5Hash"] == _b64(hashlib.md5(synthetic_content(1002)).digest())
    given = client.download(bucket, "given/ü x.txt")
    assert given.body == b"given bytes" and given.headers["Content-Type"] == "text/plain"
    assert client.download(bucket, "given/dict").body == b"from a dict"
    # Loading again replaces: same names, new generations, still 2502 objects.
    assert bulk_load_sync(gcs_emulator.url, bucket, [BulkRow("s/0001.dcm", size=5)]) == 1
    assert client.download(bucket, "s/0001.dcm").body == synthetic_content(5)
    assert len(client.list_all(bucket, maxResults=1000).names) == 2502


def test_bulk_load_reports_server_errors(gcs_emulator: RunningServer) -> None:
    with pytest.raises(EmulatorError) as caught:
        bulk_load_sync(gcs_emulator.url, "Bad Bucket", [BulkRow("x", size=1)])
    assert "HTTP 400" in str(caught.value) and "Invalid bucket name" in str(caught.value)
    with pytest.raises(EmulatorError) as caught:
        bulk_load_sync("http://127.0.0.1:9", "bucket-x", [BulkRow("x", size=1)])
    assert "is the emulator running" in str(caught.value)
