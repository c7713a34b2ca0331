"""Fixtures that start the real servers (our emulators, fake-gcs-server) on free loopback ports.

Tests talk HTTP to them; nothing here is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloudkit import (  # re-exported for tests that import them from here
    fake_gcs_binary,
    fill_bucket,
    free_port,
    start_fake_gcs,
    start_gcs_emulator,
    start_healthcare_emulator,
)

from bulkmover.emulator.processes import RunningServer

__all__ = [
    "fake_gcs_binary",
    "fill_bucket",
    "free_port",
    "start_gcs_emulator",
    "start_healthcare_emulator",
]


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[RunningServer]:
    """fake-gcs-server (in-memory), the independent reference for differential tests."""
    server = start_fake_gcs()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Our Cloud Storage emulator with no added latency or faults, shared by the session."""
    server = start_gcs_emulator(tmp_path_factory.mktemp("gcs-data"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def healthcare_emulator(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> Iterator[RunningServer]:
    """Our Healthcare API emulator (default knobs) reading ``gcs_emulator``, for the session."""
    server = start_healthcare_emulator(tmp_path_factory.mktemp("healthcare-data"), gcs_emulator.url)
    yield server
    server.stop()


@pytest.fixture(params=["gcs-emulator", "fake-gcs-server"])
def gcs_server(request: pytest.FixtureRequest) -> RunningServer:
    """Each Cloud Storage server in turn (ours, then fake-gcs-server), for differential tests."""
    server: RunningServer = request.getfixturevalue(
        "gcs_emulator" if request.param == "gcs-emulator" else "fake_gcs"
    )
    return server
