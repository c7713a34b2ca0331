"""Fixtures of the Cloud Storage emulator tests: extra servers with their own flags and data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gcs_testkit import StartGcs

from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server


@pytest.fixture
def start_gcs(tmp_path: Path) -> Iterator[StartGcs]:
    """Start our emulator with extra flags (data dir: ``tmp_path/gcs`` unless given); every
    server started is stopped at teardown."""
    started: list[RunningServer] = []

    def start(*flags: str, data_dir: Path | None = None) -> RunningServer:
        argv = python_module_argv(
            "bulkmover.emulator.gcs",
            "--port",
            "0",
            "--data-dir",
            str(data_dir or tmp_path / "gcs"),
            *flags,
        )
        server = start_server(argv, name="gcs-emulator", timeout=30)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
