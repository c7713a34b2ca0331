"""Run one aiohttp application in the foreground, announce its endpoint, stop on SIGINT/SIGTERM.

Every emulator process prints exactly one ready line to stdout once its socket is bound::

    READY <name> http://127.0.0.1:<port>

so that launchers and test fixtures can start it on port 0 and learn the real port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

from aiohttp import web

READY_PREFIX = "READY"


def origin(request: web.Request) -> str:
    """Scheme and host the client used, so links in answers lead back here.

    A Host header without a port (some clients, dicomweb-client among them, send the bare host
    name) gets the port the request came in on, unless it is the scheme's default: a link
    without it would send the client to port 80.
    """
    host = request.host
    if not host.rsplit("]", 1)[-1].count(":"):
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None
        if port and port != {"http": 80, "https": 443}.get(request.scheme):
            host = f"{host}:{port}"
    return f"{request.scheme}://{host}"


async def serve(
    app: web.Application,
    *,
    name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; cleanup hooks of the app run before returning."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None and hasattr(server, "sockets")
    bound_port = server.sockets[0].getsockname()[1]
    url = f"http://{host}:{bound_port}"
    print(f"{READY_PREFIX} {name} {url}", flush=True)
    if on_ready is not None:
        await on_ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def parse_ready_line(line: str) -> tuple[str, str] | None:
    """Return (name, url) when ``line`` is a ready line, else None."""
    parts = line.strip().split()
    if len(parts) == 3 and parts[0] == READY_PREFIX:
        return parts[1], parts[2]
    return None


def die(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error for a server that cannot start, and exit."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def port_number(text: str) -> int:
    """argparse type of a TCP port: 0..65535, 0 meaning any free port."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number; use 0..65535 (0: any free port)"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a port number; use 0..65535 (0: any free port)"
        )
    return value


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line pointing at --help, like every other
    bulkmover error (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def prepare_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` and check that it can be written, or die with one line (a read-only
    file system, a path under a regular file, no permission)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        die(
            f"cannot write data dir {data_dir}: {exc.strerror or exc}; choose a writable --data-dir"
        )
