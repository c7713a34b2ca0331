"""Credentials: a real service-account key and google-auth's real JWT flow, against a local
token endpoint. The token endpoint runs on the test's event loop, so a refresh that blocked the
loop would hang these tests: they also prove the refresh runs off the loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from hc_scripted import (
    PEM,
    Answer,
    RecordingPolicy,
    ScriptedServer,
    TokenEndpoint,
    secrets_in,
    write_key,
)

from bulkmover.errors import ApiError, ConfigError
from bulkmover.healthcare import HealthcareClient, StorePath, load_credentials, service_account_file

STORE = StorePath("p", "l", "d", "s")
OP_NAME = "projects/p/locations/l/datasets/d/operations/1"


async def test_token_fetched_once_cached_and_sent(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    scripted: ScriptedServer,
    fast_retry: RecordingPolicy,
) -> None:
    creds = service_account_file(write_key(tmp_path, token_endpoint.url))
    scripted.default.body = {"name": OP_NAME, "done": True}
    with structlog.testing.capture_logs() as logs:
        async with HealthcareClient(
            endpoint=scripted.url, credentials=creds, retry=fast_retry
        ) as client:
            for _ in range(3):
                await client.get_operation(OP_NAME)
            client_repr = repr(client)
    assert token_endpoint.issued == 1 and creds.refreshes == 1
    assert [s.headers["Authorization"] for s in scripted.seen] == ["Bearer tok-1"] * 3
    assert "mover@p.iam.gserviceaccount.com" in client_repr
    assert secrets_in(client_repr + repr(creds) + str(creds) + json.dumps(logs, default=str)) == []


async def test_token_near_expiry_is_refreshed(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    scripted: ScriptedServer,
    fast_retry: RecordingPolicy,
) -> None:
    token_endpoint.expires_in = 60  # inside the 300 s refresh margin: never good enough to reuse
    scripted.default.body = {"name": OP_NAME}
    creds = service_account_file(write_key(tmp_path, token_endpoint.url))
    async with HealthcareClient(
        endpoint=scripted.url, credentials=creds, retry=fast_retry
    ) as client:
        await client.get_operation(OP_NAME)
        await client.get_operation(OP_NAME)
    assert [s.headers["Authorization"] for s in scripted.seen] == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_refused_token_is_replaced_once(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    scripted: ScriptedServer,
    fast_retry: RecordingPolicy,
) -> None:
    creds = service_account_file(write_key(tmp_path, token_endpoint.url))
    scripted.then(scripted.error(401, "UNAUTHENTICATED"), Answer(200, {"name": OP_NAME}))
    async with HealthcareClient(
        endpoint=scripted.url, credentials=creds, retry=fast_retry
    ) as client:
        await client.get_operation(OP_NAME)
        assert [s.headers["Authorization"] for s in scripted.seen] == [
            "Bearer tok-1",
            "Bearer tok-2",
        ]
        # A second 401 in a row is the answer, with a hint about credentials.
        scripted.then(
            scripted.error(401, "UNAUTHENTICATED"), scripted.error(401, "UNAUTHENTICATED")
        )
        with pytest.raises(ApiError) as caught:
            await client.get_operation(OP_NAME)
    assert caught.value.status == 401 and "gcloud auth application-default login" in str(
        caught.value
    )


async def test_refused_credentials_name_the_account_not_the_key(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    scripted: ScriptedServer,
    fast_retry: RecordingPolicy,
) -> None:
    token_endpoint.refuse = True
    creds = service_account_file(write_key(tmp_path, token_endpoint.url))
    async with HealthcareClient(
        endpoint=scripted.url, credentials=creds, retry=fast_retry
    ) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_operation(OP_NAME)
    message = str(caught.value)
    assert caught.value.status == 401 and "mover@p.iam.gserviceaccount.com" in message
    assert secrets_in(message) == [] and scripted.seen == []


def test_bad_key_files_are_config_errors_that_quote_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        service_account_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "service_account", "private_key": PEM}))
    with pytest.raises(ConfigError) as caught:
        service_account_file(broken)
    assert "not a usable service-account key" in str(caught.value)
    assert secrets_in(str(caught.value)) == []


async def test_load_credentials_kinds(tmp_path: Path) -> None:
    anonymous = await load_credentials("anonymous")
    assert anonymous.anonymous and await anonymous.headers() == {}
    creds = await load_credentials("service_account", write_key(tmp_path, "http://127.0.0.1:1/t"))
    assert not creds.anonymous
    with pytest.raises(ConfigError, match="needs key_file"):
        await load_credentials("service_account")
    with pytest.raises(ConfigError, match="unknown kind"):
        await load_credentials("password")


async def test_application_default_credentials_from_the_environment(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    scripted: ScriptedServer,
    fast_retry: RecordingPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", str(write_key(tmp_path, token_endpoint.url))
    )
    creds = await load_credentials("adc")
    assert repr(creds) == "GoogleCredentials(service account mover@p.iam.gserviceaccount.com)"
    scripted.default.body = {"name": OP_NAME}
    async with HealthcareClient(
        endpoint=scripted.url, credentials=creds, retry=fast_retry
    ) as client:
        await client.get_operation(OP_NAME)
    assert scripted.seen[0].headers["Authorization"] == "Bearer tok-1"

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nowhere.json"))
    with pytest.raises(ConfigError, match="gcloud auth application-default login"):
        await load_credentials("adc")
