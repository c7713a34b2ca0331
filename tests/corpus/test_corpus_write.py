"""write_corpus against a real Cloud Storage server process and a local directory."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pydicom
import pytest

from bulkmover.corpus import CorpusSpec, WriteCounters, iter_corpus, read_manifest, write_corpus
from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server
from bulkmover.errors import ApiError

SPEC = CorpusSpec(studies=4, series_per_study=2, instances_per_series=5, bad_files=6, seed=21)


def fresh_bucket() -> str:
    return f"corpus-{uuid.uuid4().hex[:12]}"


async def list_objects(url: str, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every object name under ``prefix`` with its size, paging as a client must."""
    found: dict[str, int] = {}
    params = {"prefix": prefix, "maxResults": "7"}
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/storage/v1/b/{bucket}/o", params=params) as resp:
                assert resp.status == 200, await resp.text()
                page: dict[str, Any] = await resp.json()
            for item in page.get("items", []):
                found[item["name"]] = int(item["size"])
            if not page.get("nextPageToken"):
                return found
            params["pageToken"] = page["nextPageToken"]


async def download(url: str, bucket: str, name: str) -> bytes:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{url}/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}", params={"alt": "media"}
        ) as resp:
            assert resp.status == 200
            return await resp.read()


@pytest.mark.parametrize("server_name", ["gcs_emulator", "fake_gcs"])
async def test_lands_exactly_the_listed_objects(
    server_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Into our emulator, and into fake-gcs-server as an independent reference."""
    gcs_server: RunningServer = request.getfixturevalue(server_name)
    bucket = fresh_bucket()
    manifest = tmp_path / "truth.jsonl"
    counters = WriteCounters()
    summary = await write_corpus(
        f"gs://{bucket}/dump/2024",
        SPEC,
        storage_endpoint=gcs_server.url,
        manifest=manifest,
        counters=counters,
        concurrency=8,
    )
    records = list(read_manifest(manifest))
    expected = {r["name"]: r["size"] for r in records}
    assert await list_objects(gcs_server.url, bucket) == expected
    assert all(name.startswith("dump/2024/site-") for name in expected)
    assert (summary.instances, summary.bad_files) == (40, 6)
    assert summary.bytes == sum(expected.values()) == counters.bytes_done
    assert counters.files_done == counters.files_total == 46
    assert summary.seed == 21 and summary.destination == f"gs://{bucket}/dump/2024"

    generated = {f"dump/2024/{f.name}": f for f in iter_corpus(SPEC)}
    assert set(generated) == set(expected)
    valid = next(r for r in records if r["valid"])
    data = await download(gcs_server.url, bucket, valid["name"])
    assert data == generated[valid["name"]].data
    assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == valid["sop_uid"]
    bad = next(r for r in records if r["kind"] == "truncated")
    assert await download(gcs_server.url, bucket, bad["name"]) == generated[bad["name"]].data


async def test_existing_bucket_is_reused_and_prefixes_stay_apart(
    gcs_emulator: RunningServer,
) -> None:
    bucket = fresh_bucket()
    small = CorpusSpec(studies=1, series_per_study=1, instances_per_series=3, seed=1)
    await write_corpus(f"gs://{bucket}/a", small, storage_endpoint=gcs_emulator.url)
    await write_corpus(f"gs://{bucket}/b", small, storage_endpoint=gcs_emulator.url)
    names = await list_objects(gcs_emulator.url, bucket)
    assert len(names) == 6
    assert {n.split("/", 1)[0] for n in names} == {"a", "b"}


async def test_endpoint_comes_from_storage_emulator_host(
    gcs_emulator: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url.removeprefix("http://"))
    bucket = fresh_bucket()
    spec = CorpusSpec(studies=1, instances_per_series=2, seed=2)
    await write_corpus(f"gs://{bucket}", spec)
    assert len(await list_objects(gcs_emulator.url, bucket)) == 2


async def test_injected_503s_are_retried_until_everything_lands(tmp_path: Path) -> None:
    argv = python_module_argv(
        "bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(tmp_path / "gcs"),
        "--fault-rate", "0.3",
    )  # fmt: skip
    server = start_server(argv, name="gcs-faulty")
    try:
        bucket = fresh_bucket()
        manifest = tmp_path / "m.jsonl"
        summary = await write_corpus(
            f"gs://{bucket}/x", SPEC, storage_endpoint=server.url, manifest=manifest
        )
        assert summary.files == 46
        expected = {r["name"]: r["size"] for r in read_manifest(manifest)}
        listed = await _list_with_retries(server.url, bucket)
        assert listed == expected
    finally:
        server.stop()


async def _list_with_retries(url: str, bucket: str) -> dict[str, int]:
    for _ in range(50):  # the lister here is the test's own: retry the injected 503s
        try:
            return await list_objects(url, bucket)
        except AssertionError:
            continue
    raise AssertionError("listing kept failing")


async def test_unreachable_endpoint_is_one_line_api_error() -> None:
    with pytest.raises(ApiError) as err:
        await write_corpus(
            "gs://some-bucket/x", CorpusSpec(studies=1), storage_endpoint="http://127.0.0.1:9"
        )
    assert "cannot reach" in str(err.value) and "\n" not in str(err.value)


async def test_local_directory_gets_the_same_files(tmp_path: Path) -> None:
    root = tmp_path / "dump"
    manifest = tmp_path / "m.jsonl"
    summary = await write_corpus(str(root), SPEC, manifest=manifest)
    on_disk = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    generated = {f.name: f for f in iter_corpus(SPEC)}
    assert on_disk == {name: f.size for name, f in generated.items()}
    assert {r["name"] for r in read_manifest(manifest)} == set(generated)
    some = next(f for f in generated.values() if f.valid)
    assert (root / some.name).read_bytes() == some.data
    assert summary.files == 46 and summary.destination == str(root)


async def test_unwritable_local_directory_is_a_bulkmover_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        dest = blocker / "sub"  # a directory cannot be created under a file, even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        dest = locked / "sub"
    from bulkmover.errors import BulkmoverError

    with pytest.raises(BulkmoverError, match="cannot create directory"):
        await write_corpus(str(dest), CorpusSpec(studies=1, seed=1))
