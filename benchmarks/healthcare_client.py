"""Benchmark the Healthcare client and the executor's limits.

1. Client overhead: ``operations.get`` calls against the Healthcare emulator (a subprocess on a
   free loopback port, no realism knobs), serial and concurrent: calls/s and client CPU per call.
2. Rate limiter accuracy: tasks hammering one ``RateLimiter`` in real time: achieved rate vs the
   set rate, and the most grants seen in any one-second window.
3. Throughput probe: the hill climber fed synthetic store curves (pure, simulated clock): where
   it settles, how many measurement windows it takes, and the throughput it keeps vs the best.

Run: .venv/bin/python benchmarks/healthcare_client.py [--calls 2000] [--rate-seconds 20]
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bulkmover.emulator.processes import python_module_argv, start_server
from bulkmover.execution.limits import ProbeSettings, RateLimiter, ThroughputProbe
from bulkmover.healthcare import HealthcareClient, StorePath, wait_for_operation


async def client_overhead(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, client CPU ms per call) for ``calls`` operations.get."""
    store = StorePath("bench", "us-central1", f"ds{concurrency}", "s")
    async with HealthcareClient(endpoint=url) as client:
        await client.ensure_dicom_store(store)
        ref = await client.export_dicom(store, "gs://nowhere-bench/out")  # an operation to read
        await wait_for_operation(client, ref.name)
        queue = iter(range(calls))

        async def worker() -> None:
            for _ in queue:
                await client.get_operation(ref.name)

        cpu, wall = time.process_time(), time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return calls / wall, cpu / calls * 1000


async def limiter_accuracy(
    rpm: float, seconds: float, tasks: int, burst: float
) -> tuple[float, int]:
    """(achieved requests per minute, most grants in any 1 s window)."""
    limiter = RateLimiter(rpm, burst=burst)
    grants: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            await limiter.acquire()
            grants.append(time.monotonic())

    async with asyncio.TaskGroup() as tg:
        for _ in range(tasks):
            tg.create_task(worker())
    span = grants[-1] - grants[0]
    achieved = (len(grants) - 1) / span * 60
    peak, j = 0, 0
    for i, t in enumerate(grants):
        while grants[j] < t - 1.0:
            j += 1
        peak = max(peak, i - j + 1)
    return achieved, peak


def probe_run(
    curve: Callable[[int], float], window: float, seconds: int, maximum: int = 64
) -> tuple[int, int, float]:
    """(settled cap, windows until it first settled, kept throughput / best) on ``curve``."""
    probe = ThroughputProbe(ProbeSettings(maximum=maximum, window=window, settle=window / 4))
    processed, caps = 0.0, []
    for second in range(1, seconds + 1):
        processed += curve(probe.cap)
        probe.observe(float(second), int(processed), probe.cap)
        caps.append(probe.cap)
    tail = caps[len(caps) // 2 :]
    settled = Counter(tail).most_common(1)[0][0]
    first = next(i for i, c in enumerate(caps) if c == settled)
    best = max(curve(c) for c in range(1, maximum + 1))
    kept = statistics.fmean(curve(c) for c in tail) / best
    return settled, math.ceil(first / window), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    args = parser.parse_args()

    print("## Client overhead (operations.get against the emulator)\n")
    print("| in flight | calls | calls/s | client CPU ms/call |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            python_module_argv(
                "bulkmover.emulator.healthcare",
                "--port",
                "0",
                "--data-dir",
                str(Path(tmp)),
                "--gcs-endpoint",
                "http://127.0.0.1:9",
                "--workers",
                "0",
            ),  # fmt: skip
            name="healthcare-emulator",
        )
        try:
            for concurrency in (1, 8, 32):
                rate, cpu_ms = asyncio.run(client_overhead(server.url, args.calls, concurrency))
                print(f"| {concurrency} | {args.calls:,} | {rate:,.0f} | {cpu_ms:.2f} |")
        finally:
            server.stop()

    print("\n## Rate limiter accuracy (real time, 16 tasks contending)\n")
    print("| set /min | burst | seconds | achieved /min | error | most grants in 1 s "
          "| bucket bound in 1 s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for rpm in (60.0, 600.0, 6000.0):
        for burst in (1.0, 2.0):
            achieved, peak = asyncio.run(limiter_accuracy(rpm, args.rate_seconds, 16, burst))
            allowed = math.floor(burst + rpm / 60)
            error = (achieved - rpm) / rpm * 100
            print(f"| {rpm:,.0f} | {burst:.0f} | {args.rate_seconds:.0f} | {achieved:,.1f} "
                  f"| {error:+.2f}% | {peak} | {allowed} |")  # fmt: skip

    print("\n## Throughput probe on synthetic stores (60 s windows, simulated 6 h)\n")
    print("| store curve (instances/s at c operations) | best c | settled c | windows to settle "
          "| kept / best |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    curves: list[tuple[str, Callable[[int], float], int]] = [
        ("min(10 c, 120): knee at 12", lambda c: min(10.0 * c, 120.0), 12),
        ("min(3 c, 100): knee at 33.3", lambda c: min(3.0 * c, 100.0), 34),
        ("min(25 c, 2000): knee above the cap of 64", lambda c: min(25.0 * c, 2000.0), 64),
        (
            "contended: 50 min(c/10, 1) (1 - 0.03 max(0, c-10))",
            lambda c: 50 * min(c / 10, 1.0) * (1 - 0.03 * max(0, c - 10)),
            10,
        ),
        ("saturating: 100 c / (c + 8)", lambda c: 100 * c / (c + 8), 64),
    ]
    for label, curve, best_c in curves:
        settled, windows, kept = probe_run(curve, 60.0, 6 * 3600)
        print(f"| {label} | {best_c} | {settled} | {windows} | {kept:.1%} |")


if __name__ == "__main__":
    main()
