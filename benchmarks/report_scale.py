"""How long `bulkmover report` takes, and how much memory, on a million-file ledger.

Builds a planned state file with N files written straight into the ledger (PACS paths
``export/SITE/YYYY/MM/STUDY/SERIES/SOP.dcm`` with 2.25 UIDs, ~175-character URIs, 5,000 files
per shard, outcomes as a run leaves them: ~1% failed with a handful of API messages, a few
unknown and pending), then times `bulkmover report CONFIG --output FILE` in each format as a
child process: wall time, CPU time and peak RSS (``wait4``), several runs each, beside the
obvious way (the rows in a list, then ``json.dump``), and prints a markdown table.

    .venv/bin/python benchmarks/report_scale.py --files 100000 1000000
    .venv/bin/python benchmarks/report_scale.py --files 1000000 --files-per-shard 1000000 \\
        --formats json --runs 1
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bulkmover.state import PlanDraft, StateStore

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "http://127.0.0.1:9"}}
import: {{source: "gs://pacs-dump/export/**.dcm"}}
credentials: {{kind: anonymous}}
state: {state}
"""

BUCKET = "pacs-dump"
FILES_PER_SHARD = 5000
INSTANCES_PER_SERIES = 50
SERIES_PER_STUDY = 4
# (code, message) as Cloud Logging reports failed files of an import operation.
FAILURES = [
    (3, "Failed to parse DICOM: could not read the DICOM header (no DICM prefix)"),
    (3, "Failed to parse DICOM: unexpected end of file"),
    (6, "instance already exists with different content"),
    (3, "Transfer syntax 1.2.840.10008.1.2.4.100 is not supported"),
    (9, "SOP Instance UID is missing"),
]
UNKNOWN_REASONS = [
    "the operation failed without logging this file's outcome",
    "the file's generation changed after planning",
]


def uid(rng: random.Random) -> str:
    return f"2.25.{rng.randrange(10**38, 2**128)}"


def series(rng: random.Random, files: int) -> Iterator[tuple[str, list[str]]]:
    """(directory, file names) of successive series until ``files`` files, PACS style."""
    made = 0
    while made < files:
        site = f"site-{rng.choice('abc')}"
        date = f"{rng.randint(2015, 2024)}/{rng.randint(1, 12):02d}"
        study = uid(rng)
        for _ in range(SERIES_PER_STUDY):
            count = min(INSTANCES_PER_SERIES, files - made)
            if count <= 0:
                return
            directory = f"export/{site}/{date}/{study}/{uid(rng)}/"
            yield directory, sorted(f"{uid(rng)}.dcm" for _ in range(count))
            made += count


def outcome(rng: random.Random) -> tuple[str, int | None, str | None, int]:
    roll = rng.random()
    if roll < 0.01:
        code, message = rng.choice(FAILURES)
        return "failed", code, message, 0
    if roll < 0.0105:
        return "unknown", None, rng.choice(UNKNOWN_REASONS), int(rng.random() < 0.5)
    if roll < 0.011:
        return "pending", None, None, 0
    return "imported", None, None, 0


def build(path: Path, files: int, per_shard: int = FILES_PER_SHARD, seed: int = 1) -> None:
    """A planned state file of ``files`` files, written row by row as the planner would."""
    rng = random.Random(seed)
    store = StateStore.open(path)
    draft = PlanDraft(f"gs://{BUCKET}/export/**.dcm", per_shard, 50 * 2**30, files, files, 0, 0.0)
    with store.writing_plan(draft) as plan:
        conn = plan.conn
        shard_id = 0
        in_shard = per_shard
        directory_id = 0
        for directory, names in series(rng, files):
            if in_shard + len(names) > per_shard:
                month = directory.rsplit("/", 3)[0] + "/"
                shard_id = plan.add_shard(f"gs://{BUCKET}/{month}**.dcm", month, 0, 0)
                in_shard = 0
            directory_id += 1
            conn.execute(
                "INSERT INTO directories (id, path) VALUES (?, ?)", (directory_id, directory)
            )
            conn.executemany(
                "INSERT INTO objects (shard_id, directory_id, name, size, generation, outcome,"
                " error_code, error_message, changed) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    (shard_id, directory_id, name, rng.randint(200_000, 600_000), 1, *outcome(rng))
                    for name in names
                ),
            )
            in_shard += len(names)
        conn.execute(
            "UPDATE shards SET objects = t.n, bytes = t.b FROM (SELECT shard_id, count(*) AS n,"
            " sum(size) AS b FROM objects GROUP BY shard_id) AS t WHERE shards.id = t.shard_id"
        )
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


# The obvious way, for comparison: the same rows, collected into one list of dicts, then
# json.dump. Memory grows with the ledger.
BASELINE = """\
import json, sys
from pathlib import Path
from bulkmover.reporting.rows import Ledger
from bulkmover.state import StateStore
with StateStore.open_readonly(Path(sys.argv[1])) as store, Ledger(store) as ledger:
    document = {
        "totals": ledger.totals().as_dict(),
        "files": [row.as_json() for row in ledger.rows(failed_only=False)],
    }
with open(sys.argv[2], "w") as out:
    json.dump(document, out)
"""


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.stderr is not None
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {child.stderr.read().decode()}")
    child.stderr.close()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--files-per-shard",
        type=int,
        default=FILES_PER_SHARD,
        help="planned shard size (the report sorts one shard at a time)",
    )
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["json", "jsonl", "csv", "table", "json --failed", "baseline"],
        help="report variants to time (a format, optionally followed by --failed; baseline:"
        " the rows collected in a list, then json.dump)",
    )
    args = parser.parse_args()
    cli = [sys.executable, "-m", "bulkmover.cli", "report"]
    print(
        "| files | state file | report | output | wall median (min-max) | CPU median | peak RSS |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n in args.files:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state.db"
            started = time.perf_counter()
            build(state, n, args.files_per_shard)
            print(
                f"<!-- built {n:,} files in {time.perf_counter() - started:.1f} s -->", flush=True
            )
            config = Path(tmp) / "job.yaml"
            config.write_text(CONFIG.format(state=state))
            out = Path(tmp) / "report.out"
            for variant in args.formats:
                fmt, *extra = variant.split()
                argv = [*cli, str(config), "--format", fmt, *extra, "--output", str(out)]
                label = f"`report --format {variant}`"
                if variant == "baseline":
                    argv = [sys.executable, "-c", BASELINE, str(state), str(out)]
                    label = "baseline: list + `json.dump`"
                runs = [measure(argv) for _ in range(args.runs)]
                times = [t for t, _, _ in runs]
                cpu = statistics.median(c for _, c, _ in runs)
                rss = max(r for _, _, r in runs)
                print(
                    f"| {n:,} | {state.stat().st_size / 2**20:.0f} MiB | {label} |"
                    f" {out.stat().st_size / 2**20:.0f} MiB | {statistics.median(times):.2f} s"
                    f" ({min(times):.2f}-{max(times):.2f}) | {cpu:.2f} s | {rss:.0f} MB |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
