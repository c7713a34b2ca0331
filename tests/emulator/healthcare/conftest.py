"""Fixtures of the Healthcare API emulator tests: an HTTP session, a client, extra servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from hc_testkit import Hc, StartHc

from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
def hc(healthcare_emulator: RunningServer, http: aiohttp.ClientSession) -> Hc:
    return Hc(healthcare_emulator.url, http)


@pytest.fixture
def start_hc(tmp_path: Path, gcs_emulator: RunningServer) -> Iterator[StartHc]:
    """Start extra emulators (own flags, own data dir by default); all stopped at teardown.

    Same command line as ``start_healthcare_emulator`` in tests/conftest.py; ``--workers 0``
    (threads) unless given, since these servers handle small imports.
    """
    servers: list[RunningServer] = []

    def start(
        *extra: str, data_dir: Path | None = None, gcs_url: str | None = None
    ) -> RunningServer:
        flags = list(extra) if "--workers" in extra else ["--workers", "0", *extra]
        server = start_server(
            python_module_argv(
                "bulkmover.emulator.healthcare",
                "--port", "0",
                "--data-dir", str(data_dir or tmp_path / f"hc-{len(servers)}"),
                "--gcs-endpoint", gcs_url or gcs_emulator.url,
                *flags,
            ),
            name="healthcare-emulator",
        )  # fmt: skip
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
