"""The two client libraries bulkmover meets, against our emulator via STORAGE_EMULATOR_HOST."""

from __future__ import annotations

import hashlib
import io

import aiohttp
import pydicom
import pytest
from gcloud.aio.storage import Storage
from gcs_testkit import reidentified_dicom, unique_bucket
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from bulkmover.emulator.processes import RunningServer

SAMPLES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "waveform_ecg.dcm"]


@pytest.fixture
def emulator_env(gcs_emulator: RunningServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return gcs_emulator.url


def test_google_cloud_storage(emulator_env: str) -> None:
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    bucket = client.create_bucket(unique_bucket("gcs-client"))
    files = {
        f"site a/2024/study {i}/{sample}": reidentified_dicom(sample, f"Doe^{i}")
        for i, sample in enumerate(SAMPLES)
    }
    for name, data in files.items():
        bucket.blob(name).upload_from_string(data, content_type="application/dicom")
    big_name = "site a/2024/big+(1).dcm"
    big = reidentified_dicom("MR_small.dcm", "Big^One", padding=700_000)
    blob = bucket.blob(big_name, chunk_size=256 * 1024)  # resumable, in 256 KiB chunks
    blob.upload_from_string(big, content_type="application/dicom")
    files[big_name] = big

    for name, data in files.items():
        fetched = bucket.get_blob(name)
        assert fetched is not None and fetched.size == len(data)
        assert fetched.content_type == "application/dicom"
        assert fetched.md5_hash is not None
        body = fetched.download_as_bytes()  # the client checks the hash header too
        assert body == data
        assert hashlib.md5(body).digest() == __import__("base64").b64decode(fetched.md5_hash)
    ds = pydicom.dcmread(io.BytesIO(bucket.blob(big_name).download_as_bytes()))
    assert str(ds.PatientName) == "Big^One"
    assert bucket.blob(big_name).download_as_bytes(start=10, end=99) == big[10:100]

    top = client.list_blobs(bucket, prefix="site a/2024/", delimiter="/")
    names = [b.name for b in top]
    assert names == [big_name]
    assert top.prefixes == {f"site a/2024/study {i}/" for i in range(len(SAMPLES))}
    pages = list(client.list_blobs(bucket, page_size=2).pages)
    assert len(pages) == 3
    assert sorted(b.name for page in pages for b in page) == sorted(files)

    bucket.blob(big_name).delete()
    assert not bucket.blob(big_name).exists()
    assert [b.name for b in client.list_buckets(prefix=bucket.name)] == [bucket.name]


async def test_gcloud_aio_storage(emulator_env: str) -> None:
    bucket = unique_bucket("aio-client")
    data = {f"pacs/{i:03d}/{s}": reidentified_dicom(s, f"Roe^{i}") for i, s in enumerate(SAMPLES)}
    async with aiohttp.ClientSession() as session:
        client = Storage(session=session)
        created = await session.post(f"{emulator_env}/storage/v1/b", json={"name": bucket})
        assert created.status == 200  # gcloud-aio-storage cannot create buckets
        for name, body in data.items():
            await client.upload(bucket, name, body, content_type="application/dicom")
        big = reidentified_dicom("CT_small.dcm", "Big^Two", padding=300_000)
        await client.upload(bucket, "pacs/big.dcm", big, force_resumable_upload=True)
        await client.upload(bucket, "pacs/with meta.dcm", big, metadata={"metadata": {"site": "a"}})
        data["pacs/big.dcm"] = big
        data["pacs/with meta.dcm"] = big

        for name, body in data.items():
            assert await client.download(bucket, name) == body
        meta = await client.download_metadata(bucket, "pacs/with meta.dcm")
        assert meta["metadata"] == {"site": "a"} and int(meta["size"]) == len(big)

        page = await client.list_objects(bucket, params={"prefix": "pacs/", "delimiter": "/"})
        assert [i["name"] for i in page["items"]] == ["pacs/big.dcm", "pacs/with meta.dcm"]
        assert page["prefixes"] == [f"pacs/{i:03d}/" for i in range(len(SAMPLES))]

        seen: list[str] = []
        token = None
        while True:
            params = {"maxResults": "2", **({"pageToken": token} if token else {})}
            page = await client.list_objects(bucket, params=params)
            seen += [i["name"] for i in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                break
        assert seen == sorted(data)

        await client.delete(bucket, "pacs/big.dcm")
        page = await client.list_objects(bucket, params={"prefix": "pacs/big"})
        assert "items" not in page
