"""Benchmark of ``bulkmover plan``: planning time, peak memory and state-file size.

Loads synthetic PACS dumps (10k, 100k, 1M objects by default) into our Cloud Storage emulator
through its bulk path, then, for each size, with realistic page latency (``--page-latency``,
0.15 s) and without:

* runs ``bulkmover plan CONFIG --json`` as a child process: wall time, peak RSS (``wait4``), the
  number of shards, and the state file's size per million objects;
* runs the baseline side by side: google-cloud-storage ``list_blobs`` over the literal prefix
  plus ``fnmatch`` on every name (a serial page chain, the naive script), same child-process
  measurement.

Prints a markdown table. Sizes, latency and what to run are flags::

    .venv/bin/python benchmarks/plan.py                          # the full run (~10 minutes)
    .venv/bin/python benchmarks/plan.py --sizes 10000,100000 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bulkmover.emulator.gcs import BulkRow, bulk_load_sync  # noqa: E402
from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server  # noqa: E402

UID_ROOT = "1.2.826.0.1.3680043.8.498"
SIZES = (65_536, 131_072, 262_144, 524_288)


def pacs_names(count: int, seed: int) -> Iterator[tuple[str, int]]:
    """``site-a/PATIENT/STUDY/SERIES/INSTANCE.dcm`` names and sizes, like a PACS export.

    1-3 studies per patient, 1-6 series per study, 1-80 instances per series. Sizes are one of a
    few values (64-512 KiB): the emulator stores one blob per distinct synthetic size.
    """
    rng = random.Random(seed)
    made = 0
    patient = 0
    while made < count:
        patient += 1
        for study in range(rng.randint(1, 3)):
            study_uid = f"{UID_ROOT}.{seed}.{patient}.{study + 1}"
            for series in range(rng.randint(1, 6)):
                series_uid = f"{study_uid}.{series + 1}"
                for instance in range(rng.randint(1, 80)):
                    if made == count:
                        return
                    name = f"{series_uid}.{instance + 1}.dcm"
                    yield f"site-a/{patient:07d}/{study_uid}/{series_uid}/{name}", rng.choice(SIZES)
                    made += 1


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    detail: dict[str, float]


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run a child to completion: wall seconds, peak RSS (MiB) and its stdout."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read() if process.stderr else ""
        if process.returncode != 0:
            raise SystemExit(f"{argv[:4]} failed ({process.returncode}): {stderr.strip()[-2000:]}")
        out.seek(0)
        return Run(seconds, usage.ru_maxrss / 1024, {}), out.read()


def start_emulator(data_dir: Path, latency: float) -> RunningServer:
    args = ["--port", "0", "--data-dir", str(data_dir)]
    if latency:
        args += ["--page-latency", str(latency)]
    return start_server(python_module_argv("bulkmover.emulator.gcs", *args), name="gcs")


def load(data_dir: Path, sizes: list[int], seed: int) -> None:
    server = start_emulator(data_dir, 0.0)
    try:
        for size in sizes:
            started = time.monotonic()
            rows = (BulkRow(name, size=nbytes) for name, nbytes in pacs_names(size, seed))
            inserted = bulk_load_sync(server.url, bucket_for(size), rows)
            print(
                f"loaded {inserted:,} objects in {time.monotonic() - started:.0f}s", file=sys.stderr
            )
    finally:
        server.stop()


def bucket_for(size: int) -> str:
    return f"bench-{size}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plan_once(url: str, size: int, work: Path, concurrency: int) -> tuple[Run, dict[str, float]]:
    config = work / f"plan-{size}.yaml"
    state = work / f"plan-{size}.db"
    state.unlink(missing_ok=True)
    config.write_text(
        f"""\
target: {{project: bench, location: us-central1, dataset: bench, dicom_store: bench}}
storage: {{endpoint: "{url}", list_concurrency: {concurrency}}}
import:
  source: gs://{bucket_for(size)}/site-a/**.dcm
  max_objects_per_shard: 5000
  max_bytes_per_shard: 50GiB
credentials: {{kind: anonymous}}
state: {state.name}
"""
    )
    run, stdout = measure([sys.executable, "-m", "bulkmover.cli", "plan", str(config), "--json"])
    document = json.loads(stdout)
    assert document["totals"]["objects"] == size, document["totals"]
    with sqlite3.connect(state) as conn:
        inner = conn.execute("SELECT seconds, list_seconds FROM plans").fetchone()
    ledger_bytes = state.stat().st_size
    return run, {
        "shards": document["totals"]["shards"],
        "planner_seconds": inner[0],
        "list_seconds": inner[1],
        "state_mb_per_million": ledger_bytes / size * 1e6 / 2**20,
    }


def baseline_once(url: str, size: int) -> Run:
    run, stdout = measure(
        [sys.executable, __file__, "--baseline-child", url, bucket_for(size)],
        env={**os.environ, "STORAGE_EMULATOR_HOST": url},
    )
    assert int(stdout) == size, stdout
    return run


def baseline_child(url: str, bucket: str) -> None:
    """The naive script: list_blobs (serial pages, full metadata) and fnmatch every name."""
    from fnmatch import fnmatch

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="bench",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": url},
    )
    matched = [
        (blob.name, blob.size)
        for blob in client.list_blobs(bucket, prefix="site-a/")
        if fnmatch(blob.name, "site-a/*.dcm")
    ]
    print(len(matched))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="object counts, comma separated"
    )
    parser.add_argument("--page-latency", type=float, default=0.15, help="seconds per listing page")
    parser.add_argument("--no-baseline", action="store_true", help="skip the list_blobs baseline")
    parser.add_argument(
        "--no-zero-latency", action="store_true", help="skip the runs without latency"
    )
    parser.add_argument("--concurrency", type=int, default=128, help="storage.list_concurrency")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="keep/reuse the loaded emulator data here"
    )
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--baseline-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline_child(*args.baseline_child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    data_dir = args.data_dir or scratch / "gcs"
    missing = [n for n in sizes if not (data_dir / f"loaded-{args.seed}-{n}").exists()]
    if missing:
        load(data_dir, missing, args.seed)
        for n in missing:
            (data_dir / f"loaded-{args.seed}-{n}").touch()
    latencies = [args.page_latency] + ([] if args.no_zero_latency else [0.0])
    rows: list[str] = []
    try:
        for latency in latencies:
            server = start_emulator(data_dir, latency)
            pid = server.process.pid
            try:
                for size in sizes:
                    before = cpu_seconds(pid)
                    run, detail = plan_once(server.url, size, scratch, args.concurrency)
                    served = cpu_seconds(pid) - before
                    base = None if args.no_baseline else baseline_once(server.url, size)
                    speedup = f"{base.seconds / run.seconds:.1f}x" if base else "-"
                    baseline = (
                        f"{base.seconds:.1f} s | {base.peak_rss_mb:.0f} MB" if base else "- | -"
                    )
                    rows.append(
                        f"| {size:,} | {latency:g} s | {run.seconds:.1f} s"
                        f" ({detail['list_seconds']:.1f} s listing) | {served:.1f} s"
                        f" | {run.peak_rss_mb:.0f} MB | {detail['shards']:.0f}"
                        f" | {detail['state_mb_per_million']:.0f} MB | {baseline} | {speedup} |"
                    )
                    print(rows[-1], file=sys.stderr, flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        "| objects | page latency | bulkmover plan | emulator CPU during plan | peak RSS | shards"
        " | state file per 1M | baseline (list_blobs + fnmatch) | baseline RSS | speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
