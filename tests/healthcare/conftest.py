"""Fixtures for the Healthcare client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hc_scripted import RecordingPolicy, ScriptedServer, start_scripted


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    """A scripted local HTTP server; queue answers with ``scripted.then(...)``."""
    server, test_server = await start_scripted()
    yield server
    await test_server.close()


@pytest.fixture
def fast_retry() -> RecordingPolicy:
    """A retry policy that does not wait and records the Retry-After values it was given."""
    return RecordingPolicy()
