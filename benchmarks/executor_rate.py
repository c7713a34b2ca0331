"""Executor start rate against a request quota Q it is not told.

The Healthcare emulator runs with ``requests_per_minute Q`` (a token bucket per method family
holding a minute's worth, refilled at Q per minute: beyond it, 429 "Quota exceeded" with
Retry-After) and short operations (one DICOM file each, no pacing). The config allows 2Q
requests per minute, so the executor must find Q from the 429s. There are enough one-file shards
for ``--minutes`` minutes at Q (plus the first minute's burst), and the cap on operations in
flight is far from binding.

Measured, after the first minute (the emulator's bucket lets 2Q through in the first one):

- the achieved start rate, from the server's side: operations created per minute (createTime in
  the emulator's admin list) between t0 + 60 s and the last start, against Q;
- the 429s, from the client's side: the run's JSON log holds one ``healthcare.retry`` line per
  retried 429, with its time and method; starts that got a 429 over starts sent.

The quota is per method family, so polling (operations.get/list) has a budget of Q too; its 429s
are counted separately.

Run: .venv/bin/python benchmarks/executor_rate.py [--quota 300] [--minutes 5] [--over 2]
     [--in-flight 100] [--keep DIR]
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from executor_common import (
    RunKnobs,
    create_store,
    load_shards,
    machine,
    plan,
    read_log,
    run,
    server_operations,
    start_cloud,
    table,
    write_config,
)

from bulkmover.emulator.healthcare.realism import HealthcareRealism

START = "dicomStores.import"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quota", type=int, default=300, help="Q per minute (default: 300)")
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="minutes of work at Q after the first"
    )
    parser.add_argument(
        "--over", type=float, default=2.0, help="the config allows this x Q (default: 2)"
    )
    parser.add_argument("--in-flight", type=int, default=100, help="max_operations_in_flight")
    parser.add_argument("--keep", type=Path, help="keep config, state and log in this dir")
    args = parser.parse_args()
    q = args.quota
    shards = int(2 * q + q * args.minutes)

    work = Path(tempfile.mkdtemp(prefix="exec-rate-"))
    cloud = start_cloud(
        work / "cloud", HealthcareRealism(requests_per_minute=q, max_running_operations=10_000)
    )
    try:
        load_shards(cloud.gcs.url, "rate", shards, 1)
        config = write_config(
            work / "rate.yaml",
            cloud,
            bucket="rate",
            dataset="rate",
            files_per_shard=1,
            run=RunKnobs(
                max_operations_in_flight=args.in_flight,
                requests_per_minute=int(args.over * q),
            ),
        )
        planned = plan(config)
        create_store(cloud, "rate")  # dicom_ops: the lro_start bucket is still full
        outcome = run(config)
        ops = server_operations(cloud, "rate")
        log = read_log(outcome.log)
    finally:
        cloud.stop()
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cloud")
            )
        shutil.rmtree(work, ignore_errors=True)

    t0 = ops[0].created
    last = ops[-1].created
    after = [o for o in ops if o.created >= t0 + 60]
    window = last - (t0 + 60)
    rate = (len(after) - 1) / window * 60 if window > 0 and len(after) > 1 else float("nan")
    start_429 = log.throttled(START, since=t0 + 60)
    poll_429 = log.throttled("operations.", since=t0 + 60)
    start_share = start_429 / (len(after) + start_429) if after else float("nan")
    all_start_429 = log.throttled(START)
    all_poll_429 = log.throttled("operations.")
    start_requests = max(1, outcome.api_calls.get("lro_start", 0))
    first_429 = min((at for at, m, st in log.retries if st == 429), default=float("nan"))

    print(
        f"## Start rate against a quota of Q = {q}/min (config allows {int(args.over * q)}/min)\n"
    )
    print(
        table(
            [
                "shards",
                "starts after 1st min",
                "window s",
                "achieved /min",
                "vs Q",
                "start 429s after 1st min",
                "share of starts sent",
                "poll 429s after 1st min",
                "start 429s in all (share)",
                "poll 429s in all",
                "first 429 at s",
                "run s",
            ],
            [
                [
                    f"{planned:,}",
                    f"{len(after):,}",
                    f"{window:.0f}",
                    f"{rate:.1f}",
                    f"{(rate / q - 1) * 100:+.1f}%",
                    start_429,
                    f"{start_share * 100:.2f}%",
                    poll_429,
                    f"{all_start_429} ({all_start_429 / start_requests * 100:.2f}%)",
                    all_poll_429,
                    f"{first_429 - t0:.1f}",
                    f"{outcome.summary['elapsed_seconds']:.0f}",
                ]
            ],
        )
    )
    print("\n### Per minute (server starts; client 429s by family)\n")
    minutes = int((last - t0) // 60) + 1
    rows = []
    for m in range(minutes):
        lo, hi = t0 + 60 * m, t0 + 60 * (m + 1)
        rows.append(
            [
                m + 1,
                sum(1 for o in ops if lo <= o.created < hi),
                sum(
                    1
                    for at, meth, st in log.retries
                    if st == 429 and meth == START and lo <= at < hi
                ),
                sum(
                    1
                    for at, meth, st in log.retries
                    if st == 429 and meth.startswith("operations.") and lo <= at < hi
                ),
            ]
        )
    print(table(["minute", "starts", "start 429s", "poll 429s"], rows))
    print("\n### Limit changes\n")
    for at, change in log.limit_changes:
        print(f"- t0 {at - t0:+.1f} s: {change}")
    print(f"\n- api calls {outcome.api_calls}; exit {outcome.exit_code}")
    print(f"- machine: {machine()}")


if __name__ == "__main__":
    main()
