"""gcsfs (fsspec's Cloud Storage filesystem) against our emulator, as its users would drive it.

gcsfs writes small objects with a multipart upload whose parts are separated by bare ``\\n``
(real GCS accepts it), large ones with resumable sessions in 256 KiB multiples; ``mv`` tries the
``moveTo`` method first and reads a 404 as "the source is missing".
"""

from __future__ import annotations

import os

import pytest
from gcs_testkit import GcsHttp, unique_bucket
from gcsfs.core import GCSFileSystem

from bulkmover.emulator.processes import RunningServer

BLOCK = 1 << 18  # gcsfs's smallest block: each resumable chunk is a multiple of 256 KiB


@pytest.fixture
def fs(gcs_emulator: RunningServer) -> GCSFileSystem:
    return GCSFileSystem(
        endpoint_url=gcs_emulator.url, token="anon", skip_instance_cache=True, retries=1
    )


@pytest.fixture
def bucket(fs: GCSFileSystem) -> str:
    name = unique_bucket("gcsfs")
    fs.mkdir(name)
    return name


def test_small_object_round_trip(fs: GCSFileSystem, bucket: str) -> None:
    path = f"{bucket}/dir/small.bin"
    fs.pipe_file(path, b"hello\nworld\r\n")
    assert fs.cat_file(path) == b"hello\nworld\r\n"
    info = fs.info(path)
    assert info["size"] == 13 and info["type"] == "file"
    assert fs.ls(f"{bucket}/dir", detail=False) == [path]
    fs.rm(path)
    assert not fs.exists(path)


def test_write_with_metadata_and_content_type(fs: GCSFileSystem, bucket: str) -> None:
    path = f"{bucket}/meta.json"
    with fs.open(path, "wb", content_type="application/json", metadata={"k": "v"}) as f:
        f.write(b"{}")
    info = fs.info(path)
    assert info["contentType"] == "application/json"
    assert info["metadata"] == {"k": "v"}


def test_multi_chunk_object_round_trip(fs: GCSFileSystem, bucket: str) -> None:
    data = os.urandom(3 * BLOCK + 12345)
    path = f"{bucket}/big/blob.bin"
    with fs.open(path, "wb", block_size=BLOCK) as f:
        for start in range(0, len(data), 100_000):
            f.write(data[start : start + 100_000])
    assert fs.info(path)["size"] == len(data)
    assert fs.cat_file(path) == data
    assert fs.cat_file(path, start=BLOCK - 10, end=BLOCK + 10) == data[BLOCK - 10 : BLOCK + 10]
    with fs.open(path, "rb", block_size=BLOCK) as f:
        f.seek(2 * BLOCK)
        assert f.read(1000) == data[2 * BLOCK : 2 * BLOCK + 1000]


def test_listing_and_recursive_remove(fs: GCSFileSystem, bucket: str) -> None:
    for name in ("a/1", "a/2", "a/b/3", "c"):
        fs.pipe_file(f"{bucket}/{name}", name.encode())
    assert sorted(fs.ls(bucket, detail=False)) == [f"{bucket}/a", f"{bucket}/c"]
    assert sorted(fs.find(f"{bucket}/a")) == [f"{bucket}/a/1", f"{bucket}/a/2", f"{bucket}/a/b/3"]
    assert fs.info(f"{bucket}/a")["type"] == "directory"
    assert sorted(fs.glob(f"{bucket}/a/*")) == [f"{bucket}/a/1", f"{bucket}/a/2", f"{bucket}/a/b"]
    fs.rm(f"{bucket}/a", recursive=True)
    assert fs.ls(bucket, detail=False) == [f"{bucket}/c"]


def test_copy_and_move(fs: GCSFileSystem, bucket: str) -> None:
    fs.pipe_file(f"{bucket}/src", b"payload")
    fs.copy(f"{bucket}/src", f"{bucket}/copy")
    assert fs.cat_file(f"{bucket}/copy") == b"payload"
    fs.mv(f"{bucket}/copy", f"{bucket}/moved")
    assert fs.cat_file(f"{bucket}/moved") == b"payload"
    assert not fs.exists(f"{bucket}/copy")


def test_unknown_object_method_is_not_a_missing_object(
    fs: GCSFileSystem, bucket: str, gcs_emulator: RunningServer
) -> None:
    """A method the emulator lacks says so (501, JSON error), not 404 (gcsfs: "no source")."""
    fs.pipe_file(f"{bucket}/obj", b"x")
    conn = GcsHttp(gcs_emulator.url)
    try:
        answer = conn.request("POST", f"/storage/v1/b/{bucket}/o/obj/restoreTo/o/other")
        missing = conn.request("POST", f"/storage/v1/b/{bucket}/o/nothing/restoreTo/o/other")
    finally:
        conn.close()
    assert answer.status == 501
    assert answer.json()["error"]["errors"][0]["reason"] == "notImplemented"
    assert missing.status == 404


@pytest.mark.parametrize("consistency", ["md5", "size"])
def test_checked_writes(gcs_emulator: RunningServer, bucket: str, consistency: str) -> None:
    """gcsfs checks the hashes the emulator reports against what it sent."""
    checked = GCSFileSystem(
        endpoint_url=gcs_emulator.url,
        token="anon",
        skip_instance_cache=True,
        consistency=consistency,
    )
    small, big = os.urandom(1000), os.urandom(2 * BLOCK + 7)
    checked.pipe_file(f"{bucket}/small", small)
    with checked.open(f"{bucket}/big", "wb", block_size=BLOCK) as f:
        f.write(big)
    assert checked.cat_file(f"{bucket}/small") == small
    assert checked.cat_file(f"{bucket}/big") == big
