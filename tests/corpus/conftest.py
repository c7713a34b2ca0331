"""Fixtures for the corpus tests: a Cloud Storage server to write into."""

from __future__ import annotations

import importlib.util

import pytest

from bulkmover.emulator.processes import RunningServer


def _our_emulator_exists() -> bool:
    try:
        return importlib.util.find_spec("bulkmover.emulator.gcs.__main__") is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="session")
def gcs_server(request: pytest.FixtureRequest) -> RunningServer:
    """Our GCS emulator (``gcs_emulator``); fake-gcs-server only while ours is not built yet."""
    name = "gcs_emulator" if _our_emulator_exists() else "fake_gcs"
    server: RunningServer = request.getfixturevalue(name)
    return server
