"""--data-dir survives a clean stop, a kill -9, and holds identical contents once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from gcs_testkit import GcsHttp, StartGcs, unique_bucket

from bulkmover.emulator.gcs import BulkRow, bulk_load_sync, synthetic_content
from bulkmover.errors import EmulatorError


def _snapshot(client: GcsHttp, bucket: str) -> list[tuple[str, str, str, str]]:
    return [
        (i["name"], i["size"], i["md5Hash"], i["generation"])
        for i in client.list_all(bucket, maxResults=1000).items
    ]


def _blob_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs").rglob("*") if p.is_file()}


@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_contents_survive_a_restart(start_gcs: StartGcs, tmp_path: Path, how: str) -> None:
    data_dir = tmp_path / "data"
    server = start_gcs(data_dir=data_dir)
    client = GcsHttp(server.url)
    bucket = unique_bucket("persist")
    client.create_bucket(bucket)
    uploaded = {f"up/{i} ü+.dcm": f"payload {i}".encode() * (i + 1) for i in range(20)}
    for name, data in uploaded.items():
        client.upload(bucket, name, data, "application/dicom")
    rows = [BulkRow(f"bulk/{i:05d}.dcm", size=100 + i % 4) for i in range(3000)]
    assert bulk_load_sync(server.url, bucket, rows) == 3000
    before = _snapshot(client, bucket)
    client.close()
    server.stop() if how == "stop" else server.kill()

    again = start_gcs(data_dir=data_dir)
    client = GcsHttp(again.url)
    assert _snapshot(client, bucket) == before
    for name, data in uploaded.items():
        got = client.download(bucket, name)
        assert got.status == 200 and got.body == data
        assert got.headers["Content-Type"] == "application/dicom"
    assert client.download(bucket, "bulk/02999.dcm").body == synthetic_content(103)
    newer = client.upload(bucket, "up/0 ü+.dcm", b"new").json()
    assert int(newer["generation"]) > max(int(g) for *_, g in before)
    client.close()


def test_a_resumable_session_survives_a_kill(start_gcs: StartGcs, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_gcs(data_dir=data_dir)
    client = GcsHttp(server.url)
    bucket = unique_bucket("resume")
    client.create_bucket(bucket)
    started = client.request(
        "POST",
        f"/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "resumable", "name": "big.dcm"},
        b"{}",
        {"Content-Type": "application/json"},
    )
    assert started.status == 200
    session = started.headers["Location"].split(server.url, 1)[1]
    body = bytes(range(256)) * 4096  # 1 MiB
    first = client.request(
        "PUT", session, body=body[:262144], headers={"Content-Range": f"bytes 0-262143/{len(body)}"}
    )
    assert first.status == 308 and first.headers["Range"] == "bytes=0-262143"
    client.close()
    server.kill()

    again = start_gcs(data_dir=data_dir)
    client = GcsHttp(again.url)
    status = client.request("PUT", session, headers={"Content-Range": f"bytes */{len(body)}"})
    assert status.status == 308 and status.headers["Range"] == "bytes=0-262143"
    done = client.request(
        "PUT",
        session,
        body=body[262144:],
        headers={"Content-Range": f"bytes 262144-{len(body) - 1}/{len(body)}"},
    )
    assert done.status == 200 and done.json()["size"] == str(len(body))
    assert client.download(bucket, "big.dcm").body == body
    client.close()


def test_identical_contents_are_stored_once_and_freed_with_the_last_object(
    start_gcs: StartGcs, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_gcs(data_dir=data_dir)
    client = GcsHttp(server.url)
    bucket = unique_bucket("dedupe")
    client.create_bucket(bucket)
    for name in ("one", "two", "three"):
        client.upload(bucket, name, b"the same bytes")
    assert (
        bulk_load_sync(server.url, bucket, [BulkRow(f"s/{i}", size=4096) for i in range(500)])
        == 500
    )
    same, synthetic = (
        hashlib.sha256(b).hexdigest() for b in (b"the same bytes", synthetic_content(4096))
    )
    assert _blob_files(data_dir) == {same, synthetic}
    client.delete(bucket, "one")
    client.delete(bucket, "two")
    assert _blob_files(data_dir) == {same, synthetic}
    client.upload(bucket, "three", b"replaced")  # drops the last reference to "the same bytes"
    assert _blob_files(data_dir) == {synthetic, hashlib.sha256(b"replaced").hexdigest()}
    assert client.download(bucket, "three").body == b"replaced"
    client.close()


def test_a_data_dir_serves_one_emulator_at_a_time(start_gcs: StartGcs, tmp_path: Path) -> None:
    start_gcs(data_dir=tmp_path / "shared")
    with pytest.raises(EmulatorError) as caught:
        start_gcs(data_dir=tmp_path / "shared")
    assert "in use by another Cloud Storage emulator" in str(caught.value)
