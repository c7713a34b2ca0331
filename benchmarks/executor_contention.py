"""Executor against a contended store: a fixed-concurrency sweep, then the adaptive probe.

The Healthcare emulator runs with ``operation_speed`` (instances per second of one operation,
default 20) and ``store_throughput`` (instances per second of one store, shared by its running
operations, default 100): the knee is store / speed = 5 operations, while the running-operation
cap (``--cap``, 40) would let far more run. Every run imports shards of ``--files`` DICOM files
into a store of its own:

- the sweep: the probe off, ``max_operations_in_flight`` fixed at each of ``--sweep``;
- the adaptive run: the probe on (``probe_window_seconds`` = ``--window``), the config's cap
  at ``--cap``, and nothing told about the store.

Throughput is measured on the server's clock, the same way for every run: instances processed
between the first operation's start and the last one's (the last start: from then on the run
only drains, at lower concurrency), each operation counted as processing its files evenly over
its lifetime, over that window's length. Each sweep point gets about ``--seconds`` of work at its
expected rate (at least three waves of shards); the adaptive run ``--adaptive-seconds`` at the
knee's rate, the probe's climb included.

The curve (concurrency -> instances/s), with the adaptive run marked at its mean number of
running operations, is drawn with Pillow into ``--plot`` (default
benchmarks/results/executor_contention.png).

Run: .venv/bin/python benchmarks/executor_contention.py [--speed 20] [--store 100] [--cap 40]
     [--sweep 1,2,4,6,8,12,16,32] [--files 50] [--seconds 45] [--adaptive-seconds 180]
     [--window 10] [--plot PATH] [--keep DIR]
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from executor_common import (
    RunKnobs,
    ServerOp,
    create_store,
    machine,
    plan,
    read_log,
    run,
    server_operations,
    start_cloud,
    table,
    write_config,
)
from PIL import Image, ImageDraw, ImageFont

from bulkmover.corpus import CorpusSpec, iter_corpus
from bulkmover.emulator.gcs import BulkRow, bulk_load_sync
from bulkmover.emulator.healthcare.realism import HealthcareRealism

HIGH_QUOTA = 1_000_000
DEFAULT_PLOT = Path(__file__).parent / "results" / "executor_contention.png"


@dataclass(frozen=True)
class Measured:
    label: str
    concurrency: float  # fixed cap, or the adaptive run's mean running operations
    shards: int
    instances: int
    window: float  # seconds, first start -> last start
    rate: float  # instances per second in the window
    mean_running: float
    run_seconds: float


def processed_in(ops: Sequence[ServerOp], lo: float, hi: float) -> float:
    """Instances processed in [lo, hi], each operation spreading its files over its lifetime."""
    total = 0.0
    for o in ops:
        end = o.ended if o.ended is not None else hi
        count = o.success + o.failure
        if end <= o.created:
            total += count if lo <= o.created <= hi else 0
            continue
        overlap = max(0.0, min(end, hi) - max(o.created, lo))
        total += count * overlap / (end - o.created)
    return total


def mean_running(ops: Sequence[ServerOp], lo: float, hi: float) -> float:
    busy = sum(
        max(0.0, min(o.ended if o.ended is not None else hi, hi) - max(o.created, lo)) for o in ops
    )
    return busy / (hi - lo) if hi > lo else float("nan")


def measure(
    label: str, concurrency: float | None, ops: Sequence[ServerOp], seconds: float
) -> Measured:
    lo, hi = ops[0].created, ops[-1].created
    running = mean_running(ops, lo, hi)
    return Measured(
        label=label,
        concurrency=running if concurrency is None else concurrency,
        shards=len(ops),
        instances=sum(o.success + o.failure for o in ops),
        window=hi - lo,
        rate=processed_in(ops, lo, hi) / (hi - lo) if hi > lo else float("nan"),
        mean_running=running,
        run_seconds=seconds,
    )


def load(gcs_url: str, runs: dict[str, int], files: int) -> int:
    """Each run's shards under its own prefix (``c4/s00012/0003.dcm``); the same DICOM bytes
    are reused across runs (stored once), every run's instances distinct among themselves."""
    most = max(runs.values())
    spec = CorpusSpec(studies=most, instances_per_series=files, seed=3)
    corpus = [f.data for f in iter_corpus(spec)]

    def rows() -> Iterator[BulkRow]:
        for prefix, shards in runs.items():
            for i in range(shards * files):
                name = f"{prefix}/s{i // files:05d}/{i % files:04d}.dcm"
                yield BulkRow(name, content=corpus[i])

    return bulk_load_sync(gcs_url, "contended", rows())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed", type=float, default=20.0, help="operation_speed, instances/s")
    parser.add_argument("--store", type=float, default=100.0, help="store_throughput, instances/s")
    parser.add_argument("--cap", type=int, default=40, help="max_running_operations (and config)")
    parser.add_argument("--sweep", default="1,2,4,6,8,12,16,32", help="fixed concurrencies")
    parser.add_argument("--files", type=int, default=50, help="DICOM files per shard")
    parser.add_argument("--seconds", type=float, default=45.0, help="work per sweep point")
    parser.add_argument("--adaptive-seconds", type=float, default=180.0)
    parser.add_argument("--window", type=float, default=10.0, help="probe_window_seconds")
    parser.add_argument("--skip-sweep", action="store_true", help="only the adaptive run")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--keep", type=Path, help="keep configs, states and logs in this dir")
    args = parser.parse_args()
    sweep = [] if args.skip_sweep else [int(c) for c in args.sweep.split(",")]
    knee_rate = min(args.store, args.speed * args.cap)

    files: int = args.files

    def shards_for(rate: float, seconds: float, concurrency: int) -> int:
        return max(3 * concurrency, math.ceil(rate * seconds / files))

    runs = {f"c{c}": shards_for(min(args.speed * c, args.store), args.seconds, c) for c in sweep}
    runs["adaptive"] = shards_for(knee_rate, args.adaptive_seconds, 1)

    work = Path(tempfile.mkdtemp(prefix="exec-contention-"))
    knobs = HealthcareRealism(
        operation_speed=args.speed,
        store_throughput=args.store,
        max_running_operations=args.cap,
        requests_per_minute=HIGH_QUOTA,
    )
    cloud = start_cloud(work / "cloud", knobs)
    results: list[Measured] = []
    notes: list[str] = []
    try:
        loaded = load(cloud.gcs.url, runs, args.files)
        notes.append(f"loaded {loaded:,} DICOM files ({args.files} per shard)")
        for prefix, shards in runs.items():
            adaptive = prefix == "adaptive"
            config = write_config(
                work / f"{prefix}.yaml",
                cloud,
                bucket="contended",
                dataset=prefix,
                files_per_shard=args.files,
                run=RunKnobs(
                    max_operations_in_flight=args.cap if adaptive else int(prefix[1:]),
                    requests_per_minute=HIGH_QUOTA,
                    probe_throughput=adaptive,
                    probe_window_seconds=args.window,
                ),
                prefix=f"{prefix}/",
            )
            planned = plan(config)
            if planned != shards:
                raise SystemExit(f"{prefix}: planned {planned} shards, expected {shards}")
            create_store(cloud, prefix)
            outcome = run(config)
            ops = server_operations(cloud, prefix)
            label = "adaptive (probe)" if adaptive else f"fixed {prefix[1:]}"
            m = measure(
                label,
                None if adaptive else int(prefix[1:]),
                ops,
                outcome.summary["elapsed_seconds"],
            )
            results.append(m)
            if adaptive:
                changes = read_log(outcome.log).limit_changes
                t0 = ops[0].created
                notes.append(f"adaptive run: {len(changes)} limit changes")
                notes.extend(f"  - t0 {at - t0:+.0f} s: {text}" for at, text in changes)
    finally:
        cloud.stop()
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cloud")
            )
        shutil.rmtree(work, ignore_errors=True)

    fixed = [m for m in results if not m.label.startswith("adaptive")]
    best = max(fixed, key=lambda m: m.rate) if fixed else None
    print(
        f"## Contended store: operation_speed {args.speed:g}/s, store_throughput "
        f"{args.store:g}/s (knee at {args.store / args.speed:g} operations), cap {args.cap}\n"
    )
    print(
        table(
            [
                "run",
                "shards",
                "instances",
                "window s",
                "mean running",
                "instances/s",
                "vs best fixed",
                "run s",
            ],
            [
                [
                    m.label,
                    m.shards,
                    f"{m.instances:,}",
                    f"{m.window:.0f}",
                    f"{m.mean_running:.1f}",
                    f"{m.rate:.1f}",
                    f"{(m.rate / best.rate - 1) * 100:+.1f}%" if best else "",
                    f"{m.run_seconds:.0f}",
                ]
                for m in results
            ],
        )
    )
    print()
    for note in notes:
        print(note if note.startswith("  ") else f"- {note}")
    print(f"- machine: {machine()}")
    if fixed:
        adaptive_m = next((m for m in results if m.label.startswith("adaptive")), None)
        plot(
            fixed, adaptive_m, args.plot, f"store {args.store:g}/s, {args.speed:g}/s per operation"
        )
        print(f"- plot: {args.plot}")


# -- plot -----------------------------------------------------------------------------------


def plot(fixed: list[Measured], adaptive: Measured | None, path: Path, subtitle: str) -> None:
    """Concurrency -> instances/s as a PNG, drawn with Pillow (no plotting library needed)."""
    width, height = 900, 560
    left, right, top, bottom = 90, 40, 70, 80
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    small = ImageFont.load_default(size=13)
    xs = [m.concurrency for m in fixed] + ([adaptive.concurrency] if adaptive else [])
    ys = [m.rate for m in fixed] + ([adaptive.rate] if adaptive else [])
    x_lo, x_hi = math.log2(min(xs)) - 0.3, math.log2(max(xs)) + 0.3  # a log2 axis
    y_max = _nice(max(ys) * 1.15)

    def px(x: float) -> float:
        return left + (math.log2(x) - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - y / y_max * (height - top - bottom)

    # axes and grid
    for i in range(6):
        y = y_max * i / 5
        draw.line([(left, py(y)), (width - right, py(y))], fill=(225, 225, 225))
        draw.text((left - 10, py(y)), f"{y:g}", fill="black", font=small, anchor="rm")
    for m in fixed:
        draw.line(
            [(px(m.concurrency), height - bottom), (px(m.concurrency), height - bottom + 5)],
            fill="black",
        )
        draw.text(
            (px(m.concurrency), height - bottom + 8),
            f"{m.concurrency:g}",
            fill="black",
            font=small,
            anchor="mt",
        )
    draw.line(
        [(left, top), (left, height - bottom), (width - right, height - bottom)],
        fill="black",
        width=2,
    )
    draw.text(
        (width / 2, height - 30),
        "operations in flight (fixed max_operations_in_flight; log scale)",
        fill="black",
        font=font,
        anchor="mm",
    )
    draw.text((20, top - 30), "instances / s", fill="black", font=font, anchor="lm")
    draw.text(
        (width / 2, 22),
        f"Executor throughput against a contended store ({subtitle})",
        fill="black",
        font=font,
        anchor="mm",
    )
    # sweep curve
    points = [(px(m.concurrency), py(m.rate)) for m in fixed]
    draw.line(points, fill=(31, 119, 180), width=3)
    for x, y in points:
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(31, 119, 180))
    # adaptive result
    if adaptive is not None:
        y = py(adaptive.rate)
        for x0 in range(left, width - right, 14):
            draw.line([(x0, y), (min(x0 + 7, width - right), y)], fill=(214, 39, 40), width=2)
        x = px(adaptive.concurrency)
        draw.polygon([(x, y - 9), (x + 9, y), (x, y + 9), (x - 9, y)], fill=(214, 39, 40))
        draw.text(
            (x + 14, y + 22),
            f"adaptive: {adaptive.rate:.1f}/s at {adaptive.concurrency:.1f} running on average",
            fill=(214, 39, 40),
            font=small,
            anchor="ls",
        )
    draw.text(
        (width - right, top - 30),
        "blue: fixed sweep   red: adaptive run",
        fill="black",
        font=small,
        anchor="rm",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _nice(value: float) -> float:
    """The next of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k at or above ``value``."""
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * exp >= value:
            return step * exp
    return 10 * exp


if __name__ == "__main__":
    main()
