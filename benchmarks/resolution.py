"""Per-file outcome resolution: the extra API operations and extra time after the imports end.

Two synthetic PACS corpora (``bulkmover.corpus``) of ``--files`` files, one with 0.1% and one
with 1% bad files (text, truncated, empty, random bytes named ``.dcm``), are written once into a
Cloud Storage emulator whose data dir is kept (``--data-dir``), each with its manifest (the
ground truth). For every (bad rate, log cap) pair a fresh Healthcare emulator (new data dir,
empty store) runs with ``--log-errors-per-operation CAP`` and the same other knobs, and
``bulkmover run CONFIG --json`` imports the corpus (``max_objects_per_shard`` 5000: 39 shards of
1,200-5,000 files at 100,000, as the planner cuts at series directories;
``max_operations_in_flight`` 8; ``log_settle_seconds`` 30, the default).

The run is the real command in a child process; only a shim around it counts requests (every
Healthcare ``RequestEvent`` by method, and the Cloud Storage client's requests: the planner runs
before, in ``bulkmover plan``, so the run's Cloud Storage requests are the probe's header reads
and STOW-RS downloads). From the state file:

- import end: the last ``ended_at`` of a planned shard (``parent_id IS NULL``); the import phase
  runs from the first claim (``submitted_at``) to it;
- run end: the process's exit (and the last ``settled`` event);
- extra time = run end - import end, also as % of the import phase (goal: under 10%);
- extra operations: imports of child shards, Logging ``entries:list`` calls, DICOMweb calls
  (QIDO-RS searches and STOW-RS), Cloud Storage reads;
- exactness: every file's outcome against the manifest (bad files ``failed`` with a code and a
  message, every other file ``imported``, none ``unknown`` or ``pending``); a miss raises.

The critical path of the last planned shard to settle is split into: waiting for its log (end ->
``narrowing`` or ``settled``), probing (``narrowing`` -> first child shard or STOW-RS end), child
imports (-> last child ended) and the rest (-> ``settled``).

Run: .venv/bin/python benchmarks/resolution.py [--files 100000] [--rates 0.001,0.01]
     [--caps 1,10,1000] [--emulator-flags "--store-throughput 300"] [--data-dir DIR] [--keep DIR]
Prints a markdown table per run and a summary table.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from executor_common import BULKMOVER, machine, table

from bulkmover.corpus import CorpusSpec, read_manifest, write_corpus
from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server

BUCKET = "pacs"
HIGH_QUOTA = 1_000_000
SHIM = "--shim-counts"  # argv[1] of the child: run the CLI with request counting


# -- the shim: the real CLI, with its requests counted ---------------------------------------


def shim(counts_path: str, argv: list[str]) -> None:
    """``bulkmover ARGV`` in this process; per-method request counts are written at exit."""
    from bulkmover import cli
    from bulkmover.gcs.client import StorageClient
    from bulkmover.healthcare.client import HealthcareClient
    from bulkmover.healthcare.stats import RequestEvent

    methods: Counter[str] = Counter()
    storage = Counter[str]()
    init = HealthcareClient.__init__

    def counting_init(self: HealthcareClient, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)

        def count(event: RequestEvent) -> None:
            methods[event.method] += 1

        self.listeners.append(count)

    exit_ = StorageClient.__aexit__

    async def counting_exit(self: StorageClient, *args: Any) -> None:
        storage["requests"] += self.counters.requests
        storage["retries"] += self.counters.retries
        await exit_(self, *args)

    HealthcareClient.__init__ = counting_init  # type: ignore[method-assign]
    StorageClient.__aexit__ = counting_exit  # type: ignore[method-assign]

    def dump() -> None:
        Path(counts_path).write_text(
            json.dumps({"healthcare": dict(methods), "storage": dict(storage)}), encoding="utf-8"
        )

    atexit.register(dump)
    cli.main(argv)


# -- the corpora ------------------------------------------------------------------------------


def corpus_spec(files: int, rate: float, seed: int) -> CorpusSpec:
    """``files`` files of which ``rate`` are bad: 1000 x (1 - rate) studies of files/1000."""
    if files % 1000:
        raise SystemExit("--files must be a multiple of 1000")
    studies = round(1000 * (1 - rate))
    per_study = files // 1000
    series = 4 if per_study % 4 == 0 else 1
    spec = CorpusSpec(
        studies=studies,
        series_per_study=series,
        instances_per_series=per_study // series,
        bad_files=files - studies * per_study,
        seed=seed,
    )
    assert spec.files == files, spec
    return spec


def ensure_corpus(gcs: RunningServer, root: Path, spec: CorpusSpec) -> tuple[str, Path]:
    """The corpus under ``gs://pacs/f{files}-b{bad}/``, written once; (prefix, manifest)."""
    prefix = f"f{spec.files}-b{spec.bad_files}-s{spec.seed}"
    manifest = root / "corpora" / f"{prefix}.jsonl"
    done = manifest.with_suffix(".done")
    if done.exists():
        print(f"corpus {prefix}: already written", file=sys.stderr)
        return prefix, manifest
    t = time.monotonic()
    summary = asyncio.run(
        write_corpus(f"gs://{BUCKET}/{prefix}", spec, storage_endpoint=gcs.url, manifest=manifest)
    )
    print(f"corpus {prefix}: {summary.line()}", file=sys.stderr)
    done.write_text(f"{time.monotonic() - t:.1f}\n", encoding="utf-8")
    return prefix, manifest


# -- one run ----------------------------------------------------------------------------------


def post(url: str) -> None:
    req = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=60).close()


def write_config(path: Path, hc_url: str, gcs_url: str, prefix: str, args: Any) -> Path:
    config = {
        "target": {
            "project": "bench",
            "location": "us-central1",
            "dataset": "d",
            "dicom_store": "s",
            "endpoint": hc_url,
        },
        "storage": {"endpoint": gcs_url},
        "import": {
            "source": f"gs://{BUCKET}/{prefix}/**.dcm",
            "max_objects_per_shard": args.shard_files,
        },
        "run": {
            "max_operations_in_flight": args.in_flight,
            "requests_per_minute": HIGH_QUOTA,
            "probe_throughput": False,
            "log_settle_seconds": args.settle,
        },
        "credentials": {"kind": "anonymous"},
        "state": str(path.with_suffix(".db")),
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Result:
    label: str
    files: int
    bad: int
    cap: int
    shards: int
    wall: float
    import_seconds: float
    extra: float
    children: int
    child_imports: int
    log_reads: int
    qido: int
    stow: int
    gcs_reads: int
    narrowed: int
    methods: Counter[str]
    path: dict[str, float]
    notes: list[str]

    @property
    def extra_pct(self) -> float:
        return 100.0 * self.extra / self.import_seconds


def one_run(
    args: Any, work: Path, gcs: RunningServer, prefix: str, manifest: Path, rate: float, cap: int
) -> Result:
    name = f"{prefix}-cap{cap}"
    run_dir = work / name
    run_dir.mkdir(parents=True)
    flags = ["--log-errors-per-operation", str(cap), "--seed", "1", *args.emulator_flags]
    hc = start_server(
        python_module_argv(
            "bulkmover.emulator.healthcare",
            "--port", "0",
            "--data-dir", str(run_dir / "hc"),
            "--gcs-endpoint", gcs.url,
            *flags,
        ),
        name="healthcare-emulator",
    )  # fmt: skip
    try:
        time.sleep(1.0)  # the emulator's worker processes import pydicom
        base = f"{hc.url}/v1/projects/bench/locations/us-central1/datasets"
        post(f"{base}?datasetId=d")
        post(f"{base}/d/dicomStores?dicomStoreId=s")
        config = write_config(run_dir / "run.yaml", hc.url, gcs.url, prefix, args)
        subprocess.run(
            [BULKMOVER, "plan", str(config), "--json"], check=True, capture_output=True, text=True
        )
        counts = run_dir / "counts.json"
        started = time.time()
        with (run_dir / "run.stdout").open("wb") as out, (run_dir / "run.stderr").open("wb") as err:
            proc = subprocess.run(
                [sys.executable, __file__, SHIM, str(counts), "run", str(config), "--json"],
                stdout=out,
                stderr=err,
                timeout=args.timeout,
            )
        ended = time.time()
    finally:
        hc.stop()
    text = (run_dir / "run.stdout").read_text(encoding="utf-8").strip()
    if not text:
        tail = (run_dir / "run.stderr").read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"{name}: run printed no summary (exit {proc.returncode}): {tail}")
    summary = json.loads(text.splitlines()[-1])
    calls = json.loads(counts.read_text(encoding="utf-8"))
    truth = {r["name"]: r["valid"] for r in read_manifest(manifest)}
    check_exact(name, config.with_suffix(".db"), truth, summary)
    return measure(
        name, config.with_suffix(".db"), truth, cap, summary, calls, started, ended, rate
    )


def check_exact(name: str, db: Path, truth: dict[str, bool], summary: dict[str, Any]) -> None:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT d.path || o.name, o.outcome, o.error_code, o.error_message FROM objects o"
            " JOIN directories d ON d.id = o.directory_id"
        ).fetchall()
    finally:
        conn.close()
    found = {n: (outcome, code, message) for n, outcome, code, message in rows}
    wrong: list[str] = []
    if set(found) != set(truth):
        wrong.append(
            f"ledger has {len(set(found) - set(truth))} file(s) not in the manifest, "
            f"misses {len(set(truth) - set(found))}"
        )
    for n, valid in truth.items():
        outcome, code, message = found.get(n, ("absent", None, None))
        if valid and outcome != "imported":
            wrong.append(f"{n}: {outcome} {code} {message} (valid)")
        elif not valid and not (outcome == "failed" and code and message):
            wrong.append(f"{n}: {outcome} {code} {message} (bad)")
    bad = sum(1 for v in truth.values() if not v)
    expected = {"imported": len(truth) - bad, "failed": bad, "unknown": 0, "pending": 0}
    if summary.get("files") != expected:
        wrong.append(f"summary files {summary.get('files')} != {expected}")
    if wrong:
        raise SystemExit(f"{name}: NOT EXACT ({len(wrong)} problem(s)):\n" + "\n".join(wrong[:20]))


def measure(
    name: str,
    db: Path,
    truth: dict[str, bool],
    cap: int,
    summary: dict[str, Any],
    calls: dict[str, Any],
    started: float,
    ended: float,
    rate: float,
) -> Result:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        planned = conn.execute(
            "SELECT id, submitted_at, ended_at FROM shards WHERE parent_id IS NULL"
        ).fetchall()
        first_claim = min(r["submitted_at"] for r in planned)
        import_end = max(r["ended_at"] for r in planned)
        children = conn.execute(
            "SELECT id, parent_id, ended_at FROM shards WHERE parent_id IS NOT NULL"
        ).fetchall()
        child_imports = conn.execute(
            "SELECT count(*) FROM operations WHERE shard_id IN "
            "(SELECT id FROM shards WHERE parent_id IS NOT NULL)"
        ).fetchone()[0]
        events = conn.execute(
            "SELECT at, shard_id, kind, detail FROM events ORDER BY at"
        ).fetchall()
    finally:
        conn.close()
    settled = [e for e in events if e["kind"] == "settled"]
    last_settled = max((e["at"] for e in settled), default=import_end)
    narrowed = {e["shard_id"] for e in events if e["kind"] == "narrowing"}
    # The critical path: the planned shard whose files settled last.
    planned_ids = {r["id"]: r for r in planned}
    last = max(
        (e for e in settled if e["shard_id"] in planned_ids), key=lambda e: e["at"], default=None
    )
    path: dict[str, float] = {}
    if last is not None:
        sid = last["shard_id"]
        end = planned_ids[sid]["ended_at"]
        narrowing = next(
            (e["at"] for e in events if e["kind"] == "narrowing" and e["shard_id"] == sid), None
        )
        mine = [c for c in children if c["parent_id"] == sid]
        kids = {c["id"] for c in mine}
        added = min(
            (e["at"] for e in events if e["kind"] == "resolve" and e["shard_id"] in kids),
            default=None,
        )
        kids_end = max((c["ended_at"] or 0 for c in mine), default=None)
        path["shard end after import end"] = end - import_end
        path["log wait"] = (narrowing if narrowing is not None else last["at"]) - end
        if narrowing is not None:
            path["probe (+STOW)"] = (added if added is not None else last["at"]) - narrowing
            if added is not None and kids_end is not None:
                path["child imports"] = kids_end - added
                path["children settle + parent"] = last["at"] - kids_end
        path["exit after last settle"] = ended - last_settled
    methods = Counter({k: int(v) for k, v in calls["healthcare"].items()})
    bad = sum(1 for v in truth.values() if not v)
    return Result(
        label=name,
        files=len(truth),
        bad=bad,
        cap=cap,
        shards=len(planned),
        wall=ended - started,
        import_seconds=import_end - first_claim,
        extra=ended - import_end,
        children=len(children),
        child_imports=child_imports,
        log_reads=methods["entries.list"],
        qido=methods["dicomStores.searchForInstances"],
        stow=methods["dicomStores.storeInstances"],
        gcs_reads=int(calls["storage"].get("requests", 0)),
        narrowed=len(narrowed & set(planned_ids)),
        methods=methods,
        path=path,
        notes=[
            f"exit {summary.get('ok')}, files {summary['files']}, api_calls {summary['api_calls']}",
            f"last settled event {last_settled - import_end:.1f} s after import end",
            f"requests by method: {dict(sorted(methods.items()))}",
        ],
    )


# -- output -----------------------------------------------------------------------------------


HEADERS = [
    "bad files",
    "log cap",
    "import phase s",
    "extra s",
    "extra %",
    "shards narrowed",
    "child imports",
    "Logging reads",
    "QIDO",
    "STOW-RS",
    "GCS reads",
    "exact",
]


def row(r: Result) -> list[object]:
    return [
        f"{r.bad:,} ({100 * r.bad / r.files:g}%)",
        r.cap,
        f"{r.import_seconds:.1f}",
        f"{r.extra:.1f}",
        f"{r.extra_pct:.1f}%",
        f"{r.narrowed}/{r.shards}",
        r.child_imports,
        r.log_reads,
        r.qido,
        r.stow,
        f"{r.gcs_reads:,}",
        "yes",
    ]


def print_run(r: Result) -> None:
    print(f"### {r.label}: {r.files:,} files, {r.bad:,} bad, log cap {r.cap}\n")
    print(table(HEADERS, [row(r)]))
    print()
    print("critical path (the planned shard settled last), seconds: ")
    print(", ".join(f"{k} {v:.1f}" for k, v in r.path.items()))
    for note in r.notes:
        print(f"- {note}")
    print(flush=True)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == SHIM:
        shim(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000, help="files per corpus")
    parser.add_argument("--rates", default="0.001,0.01", help="bad-file rates")
    parser.add_argument("--caps", default="1,10,1000", help="--log-errors-per-operation values")
    parser.add_argument("--shard-files", type=int, default=5000, help="max_objects_per_shard")
    parser.add_argument("--in-flight", type=int, default=8, help="max_operations_in_flight")
    parser.add_argument("--settle", type=float, default=30.0, help="log_settle_seconds")
    parser.add_argument(
        "--emulator-flags", default="", help="more Healthcare emulator flags, the same every run"
    )
    parser.add_argument("--seed", type=int, default=11, help="corpus seed")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bulkmover-resolution",
        help="kept across runs: the Cloud Storage emulator's data and the corpus manifests",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="per run, seconds")
    parser.add_argument("--keep", type=Path, help="keep configs, state files and logs here")
    args = parser.parse_args()
    args.emulator_flags = shlex.split(args.emulator_flags)
    rates = [float(x) for x in args.rates.split(",") if x]
    caps = [int(x) for x in args.caps.split(",") if x]

    args.data_dir.mkdir(parents=True, exist_ok=True)
    gcs = start_server(
        python_module_argv(
            "bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(args.data_dir / "gcs")
        ),
        name="gcs-emulator",
    )
    work = Path(tempfile.mkdtemp(prefix="resolution-"))
    results: list[Result] = []
    try:
        corpora = [
            (rate, *ensure_corpus(gcs, args.data_dir, corpus_spec(args.files, rate, args.seed)))
            for rate in rates
        ]
        for rate, prefix, manifest in corpora:
            for cap in caps:
                r = one_run(args, work, gcs, prefix, manifest, rate, cap)
                results.append(r)
                print_run(r)
    finally:
        gcs.stop()
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("hc")
            )
        shutil.rmtree(work, ignore_errors=True)

    flags = " ".join(args.emulator_flags) or "none"
    print(
        f"## Resolution: {args.files:,} files, {args.shard_files:,} per shard, "
        f"{args.in_flight} operations in flight, log settle {args.settle:g} s, "
        f"emulator flags: {flags}\n"
    )
    print(table(HEADERS, [row(r) for r in results]))
    print()
    worst = max(results, key=lambda r: r.extra_pct)
    print(f"- worst case: {worst.label}, extra {worst.extra:.1f} s = {worst.extra_pct:.1f}%")
    print(f"- machine: {machine()}")


if __name__ == "__main__":
    main()
