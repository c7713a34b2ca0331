"""Realism knobs, each seen from the client side: quotas, auth, faults, failures, pacing, cancel.

Times are asserted only as lower bounds that pacing guarantees (a slow machine cannot make an
operation finish early), never as upper bounds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from hc_testkit import PROJECT, Hc, StartHc, corpus, counter, unique, upload

from bulkmover.emulator.processes import RunningServer


def duration(op: dict[str, Any]) -> float:
    meta = op["metadata"]
    start = datetime.fromisoformat(meta["createTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(meta["endTime"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


async def _bucket_of(http: aiohttp.ClientSession, gcs: RunningServer, n: int, seed: int) -> str:
    bucket = unique("knob")
    files = corpus(studies=1, series=1, instances=n, seed=seed)
    await upload(http, gcs.url, bucket, [(f.name, f.data) for f in files])
    return bucket


async def test_running_operation_cap_and_cancel(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    bucket = await _bucket_of(http, gcs_emulator, 2, seed=41)
    hc = Hc(start_hc("--max-running-operations", "2", "--operation-time", "30").url, http)
    store = await hc.create_store()
    first = await hc.start_import(store, f"gs://{bucket}/**")
    second = await hc.start_import(store, f"gs://{bucket}/**")
    refused = await hc.call("POST", f"{store}:import", {"gcsSource": {"uri": f"gs://{bucket}/**"}})
    assert refused.status == 429
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "Retry-After" in refused.headers
    for op in (first, second):
        assert await hc.ok("POST", f"{op['name']}:cancel", {}) == {}
    for op in (first, second):
        done = await hc.wait(op["name"], limit=10)
        assert done["error"]["code"] == 1, done
        assert done["metadata"]["cancelRequested"] is True
    admin = await hc.admin_operations()
    imports = [o for o in admin if o["method"] == "ImportDicomData"]
    assert [o["name"] for o in imports] == [first["name"], second["name"]]
    assert all(o["request"] == {"gcsSource": {"uri": f"gs://{bucket}/**"}} for o in imports)
    again = await hc.start_import(store, f"gs://{bucket}/**")
    await hc.ok("POST", f"{again['name']}:cancel", {})


async def test_requests_per_minute_per_family(
    start_hc: StartHc, http: aiohttp.ClientSession
) -> None:
    hc = Hc(start_hc("--requests-per-minute", "3").url, http)
    base = f"projects/{PROJECT}/locations/l"
    await hc.ok("POST", f"{base}/datasets", params={"datasetId": "d"})
    await hc.ok("GET", f"{base}/datasets/d")
    await hc.ok("GET", f"{base}/datasets/d")
    limited = await hc.call("GET", f"{base}/datasets/d")
    assert limited.status == 429
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert int(limited.headers["Retry-After"]) >= 1
    listed = await hc.call("GET", f"{base}/datasets/d/operations")
    assert listed.status == 200, "another method family has its own quota"
    other = await hc.call("GET", "projects/other/locations/l/datasets/d")
    assert other.status == 404, "another project has its own quota"


async def test_require_auth(start_hc: StartHc, http: aiohttp.ClientSession) -> None:
    hc = Hc(start_hc("--require-auth").url, http)
    base = f"projects/{PROJECT}/locations/l/datasets"
    anonymous = await hc.call("GET", base)
    assert anonymous.status == 401
    assert anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await hc.call("GET", base, headers={"Authorization": "Basic abc"})).status == 401
    assert (await hc.call("GET", base, headers={"Authorization": "Bearer t0ken"})).status == 200
    logs = await hc.call("POST", "", {}, raw_url=f"{hc.url}/v2/entries:list")
    assert logs.status == 401
    assert (await hc.call("GET", "", raw_url=f"{hc.url}/_emulator/operations")).status == 200


async def test_faults_answer_5xx_or_reset_after_the_effect(
    start_hc: StartHc, http: aiohttp.ClientSession
) -> None:
    hc = Hc(start_hc("--fault-rate", "1", "--seed", "7").url, http)
    statuses: list[int] = []
    resets = 0
    for i in range(24):
        try:
            answer = await hc.call(
                "POST", f"projects/{PROJECT}/locations/l/datasets", params={"datasetId": f"d{i}"}
            )
            statuses.append(answer.status)
            assert answer.json()["error"]["status"] in ("INTERNAL", "UNAVAILABLE")
        except aiohttp.ClientConnectionError:
            resets += 1
    assert set(statuses) == {500, 503}
    assert resets > 0
    created = [o for o in await hc.admin_operations() if o["method"] == "CreateDataset"]
    assert len(created) == resets, "a reset comes after the effect; a 5xx before it"


async def test_failed_operations_keep_what_they_stored(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    bucket = await _bucket_of(http, gcs_emulator, 20, seed=43)
    hc = Hc(start_hc("--failed-operation-rate", "1", "--seed", "3").url, http)
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/**")
    assert op["error"]["code"] in (13, 14) and "response" not in op
    stored = counter(op)["success"]
    assert stored < 20
    metrics = await hc.ok("GET", f"{store}:getDICOMStoreMetrics")
    assert int(metrics.get("instanceCount", "0")) == stored


async def test_store_throughput_is_shared_by_its_operations(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    """40 instances/s per store: two 20-instance imports into one store need a second in all;
    into two stores, each needs only half a second."""
    buckets = [await _bucket_of(http, gcs_emulator, 20, seed=s) for s in (44, 45)]
    hc = Hc(start_hc("--store-throughput", "40").url, http)
    shared = await hc.create_store()
    ops = [await hc.start_import(shared, f"gs://{b}/**") for b in buckets]
    done = [await hc.wait(op["name"]) for op in ops]
    assert all(counter(d)["success"] == 20 for d in done)
    assert max(duration(d) for d in done) >= 0.9
    separate = [await hc.create_store(), await hc.create_store()]
    ops = [await hc.start_import(s, f"gs://{b}/**") for s, b in zip(separate, buckets, strict=True)]
    done = [await hc.wait(op["name"]) for op in ops]
    assert all(duration(d) >= 0.45 for d in done)


async def test_operation_speed_time_and_latency(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    bucket = await _bucket_of(http, gcs_emulator, 10, seed=46)
    paced = Hc(start_hc("--operation-speed", "20").url, http)
    op = await paced.import_and_wait(await paced.create_store(), f"gs://{bucket}/**")
    assert counter(op)["success"] == 10 and duration(op) >= 0.45
    fixed = Hc(start_hc("--operation-time", "1.0", "--latency", "0.2").url, http)
    store = await fixed.create_store()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fixed.ok("GET", store)
    assert loop.time() - started >= 0.2
    op = await fixed.import_and_wait(store, f"gs://{bucket}/**")
    assert counter(op)["success"] == 10 and duration(op) >= 1.0


async def test_answer_latency_starts_the_operation_of_a_client_that_gave_up(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    bucket = await _bucket_of(http, gcs_emulator, 2, seed=48)
    hc = Hc(start_hc("--answer-latency", "2.0").url, http)
    store = await hc.create_store()
    body = {"gcsSource": {"uri": f"gs://{bucket}/**"}}
    url = f"{hc.url}/v1/{store}:import"
    timeout = aiohttp.ClientTimeout(total=0.5)
    try:
        async with http.post(url, json=body, timeout=timeout) as resp:
            raise AssertionError(f"answered within 0.5 s: {resp.status}")
    except TimeoutError:
        pass  # the client gave up: it never learns the operation's name
    await asyncio.sleep(0.5)
    imports = [o for o in await hc.admin_operations() if o["method"] == "ImportDicomData"]
    assert [o["request"] for o in imports] == [body]  # the effect took place all the same


def test_knob_errors_are_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bulkmover.emulator.healthcare", "--data-dir", "/nonexistent-x",
         "--duplicates-count-as", "maybe"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--duplicates-count-as" in lines[0]


async def test_deleting_a_store_ends_its_operations(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    bucket = await _bucket_of(http, gcs_emulator, 20, seed=47)
    hc = Hc(start_hc("--operation-speed", "10").url, http)
    store = await hc.create_store()
    op = await hc.start_import(store, f"gs://{bucket}/**")
    assert await hc.ok("DELETE", store) == {}
    done = await hc.wait(op["name"], limit=10)
    assert done["error"]["code"] == 5 and "deleted" in done["error"]["message"]
    dataset, store_id = store.rsplit("/dicomStores/", 1)
    await hc.ok("POST", f"{dataset}/dicomStores", {}, params={"dicomStoreId": store_id})
    metrics = await hc.ok("GET", f"{store}:getDICOMStoreMetrics")
    assert metrics == {"name": store}, "an empty store: zero counts are left out"


async def test_profile_sections_and_flags(
    start_hc: StartHc, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A launcher profile's ``healthcare:`` section applies; a command-line flag wins."""
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "gcs:\n  page_latency: 0.2\nhealthcare:\n  require_auth: true\n  requests_per_minute: 2\n"
    )
    strict = Hc(start_hc("--profile", str(profile)).url, http)
    assert (await strict.call("GET", f"projects/{PROJECT}/locations/l/datasets")).status == 401
    relaxed = Hc(start_hc("--profile", str(profile), "--no-require-auth").url, http)
    statuses = [
        (await relaxed.call("GET", f"projects/{PROJECT}/locations/l/datasets")).status
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
