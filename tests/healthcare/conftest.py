"""Fixtures for the Healthcare client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hc_scripted import (
    RecordingPolicy,
    ScriptedServer,
    TokenEndpoint,
    start_scripted,
    start_token_endpoint,
)


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


@pytest.fixture
async def token_endpoint() -> AsyncIterator[TokenEndpoint]:
    """A local OAuth token endpoint for service-account keys made by ``write_key``."""
    endpoint, server = await start_token_endpoint()
    yield endpoint
    await server.close()
