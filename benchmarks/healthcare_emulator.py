"""Benchmark the Healthcare API emulator's own import throughput (instances per second).

A GCS emulator and a Healthcare API emulator (no pacing) run as subprocesses on free loopback
ports, each with a fresh data dir. A synthetic corpus (``bulkmover.corpus``: real re-identified
DICOM, 0.2% bad files) is bulk-loaded into the GCS emulator once, in ``--parts`` prefixes. Then:

- one operation importing the whole corpus;
- ``--parts`` concurrent operations (one per prefix) into one store, then into a store each;
- tiny shards: ``--shards`` operations of ``--shard-size`` files started at once;
- the same tiny shards on a second emulator started with ``--operation-time T``, as executor
  benchmarks run it: if the emulator is not the bottleneck, every operation lasts about T.

Throughput is measured on the server's clock: files over (last endTime - first createTime).

Run: .venv/bin/python benchmarks/healthcare_emulator.py [--instances 4000] [--parts 4]
     [--shards 100] [--shard-size 10] [--operation-time 2] [--workers 2]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import aiohttp

from bulkmover.corpus import CorpusFile, CorpusSpec, iter_corpus
from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server

PARENT = "projects/bench/locations/local"


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Bench:
    """Just enough of the API to create stores and run imports, over raw HTTP."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.session.request(
            method, f"{self.url}/v1/{path}", json=body, params=params or None
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"{method} {path}: {resp.status} {data}")
            return data

    async def store(self) -> str:
        dataset = f"d{uuid.uuid4().hex[:8]}"
        await self.call("POST", f"{PARENT}/datasets", {}, datasetId=dataset)
        await self.call("POST", f"{PARENT}/datasets/{dataset}/dicomStores", {}, dicomStoreId="s")
        return f"{PARENT}/datasets/{dataset}/dicomStores/s"

    async def imports(self, jobs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Start every (store, uri) import at once, wait for all, return the final operations."""
        started = await asyncio.gather(
            *(self.call("POST", f"{s}:import", {"gcsSource": {"uri": u}}) for s, u in jobs)
        )
        done: list[dict[str, Any]] = []
        for op in started:
            while True:
                current = await self.call("GET", op["name"])
                if current.get("done"):
                    if "error" in current:
                        raise SystemExit(f"import failed: {current['error']}")
                    done.append(current)
                    break
                await asyncio.sleep(0.05)
        return done


def summary(label: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    counters = [o["metadata"]["counter"] for o in ops]
    files = sum(int(c.get("success", 0)) + int(c.get("failure", 0)) for c in counters)
    first = min(when(o["metadata"]["createTime"]) for o in ops)
    last = max(when(o["metadata"]["endTime"]) for o in ops)
    durations = [when(o["metadata"]["endTime"]) - when(o["metadata"]["createTime"]) for o in ops]
    return {
        "scenario": label,
        "operations": len(ops),
        "files": files,
        "seconds": last - first,
        "rate": files / (last - first),
        "median_op": statistics.median(durations),
    }


async def bulk_load(gcs_url: str, bucket: str, objects: Iterable[tuple[str, CorpusFile]]) -> int:
    lines = [
        json.dumps({"name": name, "content_b64": base64.b64encode(f.data).decode()}).encode()
        + b"\n"
        for name, f in objects
    ]
    async with aiohttp.ClientSession() as session:
        url = f"{gcs_url}/_emulator/b/{bucket}/bulk"
        async with session.post(url, data=b"".join(lines)) as resp:
            if resp.status != 200:
                raise SystemExit(f"bulk load failed: {resp.status} {await resp.text()}")
    return len(lines)


def start_healthcare(tmp: str, name: str, gcs: RunningServer, *flags: str) -> RunningServer:
    server = start_server(
        python_module_argv(
            "bulkmover.emulator.healthcare",
            "--port", "0",
            "--data-dir", f"{tmp}/{name}",
            "--gcs-endpoint", gcs.url,
            *flags,
        ),
        name=name,
    )  # fmt: skip
    time.sleep(1.0)  # let the worker processes finish importing pydicom
    return server


async def scenarios(
    args: argparse.Namespace, gcs: RunningServer, plain: RunningServer, timed: RunningServer
) -> list[dict[str, Any]]:
    spec = CorpusSpec(
        studies=max(1, args.instances // 100),
        series_per_study=4,
        instances_per_series=25,
        bad_files=max(1, args.instances // 500),
        seed=1,
    )
    files = await bulk_load(
        gcs.url,
        "bench",
        ((f"p{i % args.parts}/{f.name}", f) for i, f in enumerate(iter_corpus(spec))),
    )
    tiny = CorpusSpec(studies=args.shards, instances_per_series=args.shard_size, seed=2)
    await bulk_load(
        gcs.url,
        "shards",
        ((f"s{i // args.shard_size}/{f.name}", f) for i, f in enumerate(iter_corpus(tiny))),
    )
    parts = [f"gs://bench/p{i}/**.dcm" for i in range(args.parts)]
    shards = [f"gs://shards/s{i}/**" for i in range(args.shards)]
    rows: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        bench = Bench(plain.url, session)
        whole = await bench.imports([(await bench.store(), "gs://bench/**.dcm")])
        rows.append(summary("1 operation, whole corpus", whole))
        shared = await bench.store()
        ops = await bench.imports([(shared, uri) for uri in parts])
        rows.append(summary(f"{args.parts} operations, one store", ops))
        ops = await bench.imports([(await bench.store(), uri) for uri in parts])
        rows.append(summary(f"{args.parts} operations, {args.parts} stores", ops))
        store = await bench.store()
        ops = await bench.imports([(store, uri) for uri in shards])
        rows.append(summary(f"{args.shards} operations of {args.shard_size} files", ops))
        slow = Bench(timed.url, session)
        store = await slow.store()
        ops = await slow.imports([(store, uri) for uri in shards])
        label = f"{args.shards} operations of {args.shard_size} files"
        rows.append(summary(f"{label}, operation_time {args.operation_time:g} s", ops))
    assert rows[0]["files"] == files
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--shard-size", type=int, default=10)
    parser.add_argument("--operation-time", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2, help="--workers of the emulator")
    args = parser.parse_args()
    cap = ("--max-running-operations", str(max(100, args.shards)), "--workers", str(args.workers))
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        gcs = start_server(
            python_module_argv("bulkmover.emulator.gcs", "--port", "0", "--data-dir", f"{tmp}/gcs"),
            name="gcs",
        )
        servers = [gcs]
        try:
            servers.append(start_healthcare(tmp, "plain", gcs, *cap))
            timed = ("--operation-time", str(args.operation_time))
            servers.append(start_healthcare(tmp, "timed", gcs, *cap, *timed))
            rows = asyncio.run(scenarios(args, gcs, servers[1], servers[2]))
        finally:
            for server in reversed(servers):
                server.stop()
    python = platform.python_version()
    print(
        f"Healthcare emulator import throughput ({os.cpu_count()} cores, Python {python}, "
        f"--workers {args.workers}; each file read from the GCS emulator)\n"
    )
    print("| scenario | operations | files | seconds | files/s | median operation (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['operations']} | {r['files']} | {r['seconds']:.2f} | "
            f"{r['rate']:.0f} | {r['median_op']:.2f} |"
        )


if __name__ == "__main__":
    main()
