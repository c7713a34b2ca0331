"""How long `bulkmover status` takes on a big state file (goal: under a second at 100,000 shards).

Builds a state file with N shards (a mix of done, running, failed and pending, with operations
and events as a run leaves them), then times `bulkmover status CONFIG` and `--json` as
subprocesses, several runs each, and prints a markdown table.

    .venv/bin/python benchmarks/status_scale.py --shards 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bulkmover.state import PlanDraft, StateStore
from bulkmover.state.store import ShardState

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "http://127.0.0.1:9"}}
import: {{source: "gs://bkt/site/**.dcm"}}
credentials: {{kind: anonymous}}
state: {state}
"""


def build(path: Path, shards: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    store = StateStore.open(path)
    draft = PlanDraft("gs://bkt/site/**.dcm", 5000, 50 * 2**30, shards * 100, shards * 100, 0, 0.0)
    with store.writing_plan(draft) as plan:
        for i in range(shards):
            plan.add_shard(f"gs://bkt/site/{i:07d}/**.dcm", f"site/{i:07d}/", 100, 100 * 50_000)
    ledger = store.runs
    conn = store.conn
    conn.execute("BEGIN")
    for shard_id in range(1, shards + 1):
        roll = rng.random()
        if roll < 0.6:
            state, ok, bad = ShardState.DONE, 100, 0
        elif roll < 0.62:
            state, ok, bad = ShardState.FAILED, 0, 0
        elif roll < 0.6205:
            state, ok, bad = ShardState.RUNNING, rng.randint(0, 99), 0
        else:
            continue
        name = f"projects/p/locations/l/datasets/d/operations/{shard_id}"
        conn.execute(
            "UPDATE shards SET state=?, operation=?, attempts=1, submitted_at=?, success=?, "
            "failure=? WHERE id=?",
            (state.value, name, time.time() - 60, ok, bad, shard_id),
        )
        conn.execute(
            "INSERT INTO operations (name, shard_id, attempt, started_at, ended_at, done, success,"
            " failure) VALUES (?,?,?,?,?,?,?,?)",
            (name, shard_id, 1, time.time() - 120, time.time() - 30, 1, ok, bad),
        )
        conn.execute(
            "INSERT INTO events (at, shard_id, kind, detail) VALUES (?,?,?,?)",
            (time.time(), shard_id, state.value, "benchmark"),
        )
    conn.execute("COMMIT")
    assert ledger.totals().shards == shards
    store.close()


def timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "bulkmover.cli"]
    print("| shards | state file | `status` median (min-max) | `status --json` median (min-max) |")
    print("|---:|---:|---:|---:|")
    for n in args.shards:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state.db"
            build(state, n)
            config = Path(tmp) / "job.yaml"
            config.write_text(CONFIG.format(state=state))
            board = timed([*cli, "status", str(config)], args.runs)
            as_json = timed([*cli, "status", str(config), "--json"], args.runs)
            size = state.stat().st_size / 2**20
            print(
                f"| {n:,} | {size:.1f} MiB | {statistics.median(board):.2f} s "
                f"({min(board):.2f}-{max(board):.2f}) | {statistics.median(as_json):.2f} s "
                f"({min(as_json):.2f}-{max(as_json):.2f}) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
