"""Restarted on the same --data-dir the emulator has the same content, operations included;
after kill -9 in the middle of an import, the operation resumes and counts each file once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hc_testkit import Hc, StartHc, corpus, counter, make_bucket, unique, upload

from bulkmover.emulator.processes import RunningServer


async def snapshot(hc: Hc, store: str) -> dict[str, Any]:
    dataset = store.split("/dicomStores/")[0]
    ops = (await hc.ok("GET", f"{dataset}/operations"))["operations"]
    return {
        "store": await hc.ok("GET", store),
        "metrics": await hc.ok("GET", f"{store}:getDICOMStoreMetrics"),
        "instances": await hc.ok("GET", f"{store}/dicomWeb/instances", params={"limit": "1000"}),
        "operations": ops,
        "logs": [await hc.log_entries(op["name"]) for op in ops],
        "admin": await hc.admin_operations(),
    }


async def test_restart_keeps_everything(
    start_hc: StartHc, tmp_path: Path, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    files = corpus(studies=2, series=2, instances=3, bad=3, seed=71)
    bucket = unique("persist")
    await upload(http, gcs_emulator.url, bucket, [(f.name, f.data) for f in files])
    await make_bucket(http, gcs_emulator.url, f"{bucket}-out")
    data_dir = tmp_path / "hc"
    server = start_hc(data_dir=data_dir)
    hc = Hc(server.url, http)
    store = await hc.create_store()
    imported = await hc.import_and_wait(store, f"gs://{bucket}/**.dcm")
    assert counter(imported) == {"success": 12, "failure": 3, "pending": 0}
    exported = await hc.ok(
        "POST", f"{store}:export", {"gcsDestination": {"uriPrefix": f"gs://{bucket}-out/x"}}
    )
    await hc.wait(exported["name"])
    before = await snapshot(hc, store)
    server.stop()
    again = Hc(start_hc(data_dir=data_dir).url, http)
    assert await snapshot(again, store) == before
    instance = before["instances"][0]
    path = "/".join(
        f"{level}/{instance[tag]['Value'][0]}"
        for level, tag in (
            ("studies", "0020000D"),
            ("series", "0020000E"),
            ("instances", "00080018"),
        )
    )
    retrieved = await again.call(
        "GET",
        f"{store}/dicomWeb/{path}",
        headers={"Accept": "application/dicom; transfer-syntax=*"},
    )
    assert retrieved.body in {f.data for f in files}


@pytest.mark.parametrize("count_as", ["success", "skip"])
async def test_kill_9_mid_import_resumes_and_counts_each_file_once(
    count_as: str,
    start_hc: StartHc,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    gcs_emulator: RunningServer,
) -> None:
    files = corpus(studies=4, series=2, instances=10, bad=4, seed=72)
    bucket = unique("crash")
    await upload(http, gcs_emulator.url, bucket, [(f.name, f.data) for f in files])
    data_dir = tmp_path / "hc"
    flags = ("--duplicates-count-as", count_as)
    slow = start_hc("--operation-speed", "40", *flags, data_dir=data_dir)
    hc = Hc(slow.url, http)
    store = await hc.create_store()
    started = await hc.start_import(store, f"gs://{bucket}/**.dcm")
    for _ in range(500):  # poll until the import is part way through
        if counter(await hc.ok("GET", started["name"]))["success"] >= 15:
            break
        await asyncio.sleep(0.02)
    slow.kill()
    fast = Hc(start_hc(*flags, data_dir=data_dir).url, http)
    done = await fast.wait(started["name"])
    assert "error" not in done
    assert counter(done) == {"success": 80, "failure": 4, "pending": 0}
    metrics = await fast.ok("GET", f"{store}:getDICOMStoreMetrics")
    assert metrics["instanceCount"] == "80"
    sources = [e["jsonPayload"]["source"] for e in await fast.log_entries(started["name"])]
    assert sorted(sources) == sorted(f"gs://{bucket}/{f.name}" for f in files if not f.valid)
    [admin] = [o for o in await fast.admin_operations() if o["name"] == started["name"]]
    assert admin["counter"]["success"] == 80 and admin["done"]
