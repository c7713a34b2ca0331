"""Benchmark the synthetic PACS corpus: generate-only rate, and generate + upload into our GCS
emulator (a subprocess on a free loopback port), plus a local-directory run.

Run: .venv/bin/python benchmarks/corpus.py [--instances 10000] [--repeat 3]
Prints a markdown table (median of the repeats; min and max beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bulkmover.corpus import CorpusSpec, iter_corpus, write_corpus
from bulkmover.corpus.templates import load_templates
from bulkmover.emulator.processes import python_module_argv, start_server


def spec_for(instances: int, seed: int) -> CorpusSpec:
    """``instances`` as studies of 4 series of 25 instances, plus 0.2% bad files."""
    studies = max(1, instances // 100)
    return CorpusSpec(
        studies=studies,
        series_per_study=4,
        instances_per_series=25,
        bad_files=max(1, instances // 500),
        seed=seed,
        sites=3,
    )


def timed(run: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    size = run()
    return time.perf_counter() - start, size


def generate_only(spec: CorpusSpec) -> int:
    return sum(len(f.data) for f in iter_corpus(spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    load_templates()  # compiled once per process, as in real runs
    rows: list[tuple[str, list[float], int, int]] = []

    def record(label: str, runs: list[tuple[float, int]], files: int) -> None:
        rows.append((label, [t for t, _ in runs], files, runs[0][1]))

    spec = spec_for(args.instances, seed=1)
    record(
        "generate only (iter_corpus, no I/O)",
        [timed(lambda: generate_only(spec)) for _ in range(args.repeat)],
        spec.files,
    )

    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        server = start_server(
            python_module_argv(
                "bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(Path(tmp) / "gcs")
            ),
            name="gcs",
        )
        try:
            runs = []
            for i in range(args.repeat):
                bucket = f"bench-{uuid.uuid4().hex[:10]}"
                s = spec_for(args.instances, seed=100 + i)
                runs.append(
                    timed(
                        lambda s=s, bucket=bucket: (
                            asyncio.run(
                                write_corpus(
                                    f"gs://{bucket}/dump",
                                    s,
                                    storage_endpoint=server.url,
                                    concurrency=args.concurrency,
                                )
                            ).bytes
                        )
                    )
                )
            label = f"generate + upload to our GCS emulator ({args.concurrency} in flight)"
            record(label, runs, spec.files)

            cli = str(Path(sys.executable).with_name("bulkmover"))
            runs = []
            for i in range(args.repeat):
                bucket = f"bench-cli-{uuid.uuid4().hex[:10]}"
                s = spec_for(args.instances, seed=200 + i)
                argv = [
                    cli, "corpus", f"gs://{bucket}/dump", "--studies", str(s.studies),
                    "--series-per-study", "4", "--instances-per-series", "25",
                    "--bad-files", str(s.bad_files), "--seed", str(s.seed), "--sites", "3",
                    "--storage-endpoint", server.url,
                ]  # fmt: skip
                runs.append(timed(lambda argv=argv: _run_cli(argv)))
            record("`bulkmover corpus` end to end (process start included)", runs, spec.files)
        finally:
            server.stop()

        runs = []
        for i in range(args.repeat):
            dest = Path(tmp) / f"local-{i}"
            s = spec_for(args.instances, seed=300 + i)
            runs.append(timed(lambda dest=dest, s=s: asyncio.run(write_corpus(str(dest), s)).bytes))
        record("generate + write to a local directory", runs, spec.files)

    print(f"Corpus benchmark: {spec.instances:,} instances + {spec.bad_files} bad files")
    print()
    print("| run | files | MB | median s | min s | max s | files/s (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, times, files, size in rows:
        median = statistics.median(times)
        print(
            f"| {label} | {files:,} | {size / 1e6:.0f} | {median:.2f} | {min(times):.2f} "
            f"| {max(times):.2f} | {files / median:,.0f} |"
        )


def _run_cli(argv: list[str]) -> int:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"corpus command failed: {result.stderr.strip()}")
    return int(result.stdout.split(" bad files, ")[1].split(" bytes")[0])


if __name__ == "__main__":
    main()
