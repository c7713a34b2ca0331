"""What the coverage counts (unplanned, gone, changed, drifted: issue 14) cost on a big ledger.

``run`` reads them once at the end, the live board every few seconds with the per-file totals,
and ``status`` on every call. Builds the million-file state file of ``report_scale`` and times,
in one process on the same warm file, ``read_coverage`` beside the per-file totals the board
already computed before (``FileLedger.totals``, a GROUP BY over the ledger): the ratio is what
the coverage adds. Then ``bulkmover status`` as a whole process.

    .venv/bin/python benchmarks/coverage_scale.py --files 100000 1000000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report_scale import CONFIG, build

from bulkmover.state.coverage import read_coverage
from bulkmover.state.store import StateStore


def timed(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| files | `FileLedger.totals` | `read_coverage` | ratio | `bulkmover status` |")
    print("|---:|---:|---:|---:|---:|")
    for files in args.files:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state.db"
            build(state, files)
            config = Path(tmp) / "job.yaml"
            config.write_text(CONFIG.format(state=state))
            with StateStore.open_readonly(state) as store:
                totals = timed(store.runs.files.totals, args.runs)
                coverage = timed(lambda conn=store.conn: read_coverage(conn), args.runs)
            argv = [sys.executable, "-m", "bulkmover.cli", "status", str(config)]
            status = timed(
                lambda argv=argv: subprocess.run(argv, check=True, capture_output=True), args.runs
            )
            print(
                f"| {files:,} | {totals * 1000:,.0f} ms | {coverage * 1000:,.0f} ms"
                f" | {coverage / totals:.2f} | {status:.2f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
