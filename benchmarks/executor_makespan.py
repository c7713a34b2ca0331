"""Executor makespan: S one-file shards, operations of fixed time T, at most C running at once.

The Healthcare emulator runs with ``operation_time T`` and ``max_running_operations C`` (one more
start is answered 429 "too many long-running operations") and request quotas far above what the
run needs. ``bulkmover run`` imports S shards of one DICOM file each. The ideal makespan is
``ceil(S / C) * T``: C operations always running, each starting the moment one ends.

Two runs, each into its own dataset:

- ``told``: the config's ``max_operations_in_flight`` is C, the throughput probe is off;
- ``discover``: the config allows ``--over`` x C (2C), so the executor only learns C from the
  429s of refused starts (and keeps probing above it when quiet).

Reported per run: makespan on the server's clock (first operation created -> last one ended) and
the command's own elapsed time, both against the ideal; API calls per shard by quota family; the
429s; the run process's CPU seconds per shard (``os.wait4`` of the ``bulkmover run`` child).

Run: .venv/bin/python benchmarks/executor_makespan.py [--shards 10000] [--operation-time 8]
     [--cap 400] [--over 2] [--runs told,discover] [--concurrent-starts 1] [--keep DIR]
     [--operations-filter supported|ignored|rejected]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

from executor_common import (
    RunKnobs,
    ServerOp,
    create_store,
    load_shards,
    machine,
    plan,
    read_log,
    run,
    server_operations,
    span,
    start_cloud,
    table,
    write_config,
)

from bulkmover.emulator.healthcare.realism import HealthcareRealism

HIGH_QUOTA = 1_000_000  # requests per minute, on both sides: never the limit here


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=int, default=10_000, help="S (default: 10000)")
    parser.add_argument("--operation-time", type=float, default=8.0, help="T seconds (default: 8)")
    parser.add_argument("--cap", type=int, default=400, help="C, the server's cap (default: 400)")
    parser.add_argument(
        "--over", type=float, default=2.0, help="the discover run allows this x C (default: 2)"
    )
    parser.add_argument("--runs", default="told,discover", help="which runs (default: both)")
    parser.add_argument(
        "--concurrent-starts",
        type=int,
        default=1,
        help="the config's run.concurrent_starts (default 1, bulkmover's own default)",
    )
    parser.add_argument(
        "--operations-filter",
        choices=["supported", "ignored", "rejected"],
        default="supported",
        help="the emulator's reading of operations.list's filter (issue 15); ignored or"
        " rejected make the executor poll with a get per operation (default: supported)",
    )
    parser.add_argument("--keep", type=Path, help="keep configs, states and logs in this dir")
    args = parser.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if not set(runs) <= {"told", "discover"}:
        parser.error("--runs takes told and/or discover")

    work = Path(tempfile.mkdtemp(prefix="exec-makespan-"))
    knobs = HealthcareRealism(
        operation_time=args.operation_time,
        max_running_operations=args.cap,
        requests_per_minute=HIGH_QUOTA,
        operations_filter=args.operations_filter,
    )
    cloud = start_cloud(work / "cloud", knobs)
    rows: list[list[object]] = []
    notes: list[str] = []
    try:
        t = time.monotonic()
        loaded = load_shards(cloud.gcs.url, "makespan", args.shards, 1)
        notes.append(f"loaded {loaded:,} DICOM files in {time.monotonic() - t:.1f} s")
        ideal = math.ceil(args.shards / args.cap) * args.operation_time
        for name in runs:
            allowed = args.cap if name == "told" else int(args.over * args.cap)
            config = write_config(
                work / f"{name}.yaml",
                cloud,
                bucket="makespan",
                dataset=name,
                files_per_shard=1,
                run=RunKnobs(
                    max_operations_in_flight=allowed,
                    requests_per_minute=HIGH_QUOTA,
                    concurrent_starts=args.concurrent_starts,
                ),
            )
            t = time.monotonic()
            shards = plan(config)
            notes.append(f"{name}: planned {shards:,} shards in {time.monotonic() - t:.1f} s")
            create_store(cloud, name)
            outcome = run(config)
            ops = server_operations(cloud, name)
            s = span(ops)
            totals = outcome.summary["totals"]
            calls = outcome.api_calls
            log = read_log(outcome.log)
            peak = peak_running(ops)
            rows.append(
                [
                    f"{name} (config {allowed})",
                    f"{shards:,}",
                    f"{ideal:.0f}",
                    f"{s.seconds:.1f}",
                    f"{(s.seconds / ideal - 1) * 100:+.1f}%",
                    f"{outcome.summary['elapsed_seconds']:.1f}",
                    f"{(outcome.summary['elapsed_seconds'] / ideal - 1) * 100:+.1f}%",
                    peak,
                    f"{calls.get('lro_start', 0) / shards:.3f}",
                    f"{calls.get('operations', 0) / shards:.3f}",
                    f"{outcome.summary['throttled']:,}",
                    f"{outcome.cpu:.1f}",
                    f"{outcome.cpu / shards * 1000:.2f}",
                    f"{totals['done']:,}/{totals['shards']:,}",
                ]
            )
            notes.append(
                f"{name}: exit {outcome.exit_code}, {len(ops):,} operations on the server, "
                f"api calls {calls}, {len(log.limit_changes)} limit changes"
                + (f" (last: {log.limit_changes[-1][1]})" if log.limit_changes else "")
            )
    finally:
        cloud.stop()
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cloud")
            )
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"## Makespan: {args.shards:,} shards, T = {args.operation_time:g} s, "
        f"C = {args.cap} (ideal ceil(S/C) T = {ideal:.0f} s)\n"
    )
    print(
        table(
            [
                "run",
                "shards",
                "ideal s",
                "makespan s (server)",
                "vs ideal",
                "run elapsed s",
                "vs ideal",
                "peak running",
                "starts/shard",
                "operations calls/shard",
                "429s",
                "run CPU s",
                "CPU ms/shard",
                "done",
            ],
            rows,
        )
    )
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- machine: {machine()}")


def peak_running(ops: list[ServerOp]) -> int:
    """Most operations running at once on the server, from their create/end times."""
    events = [(o.created, 1) for o in ops] + [(o.ended, -1) for o in ops if o.ended is not None]
    events.sort(key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


if __name__ == "__main__":
    main()
