"""One credential for every API of a job: the Cloud Storage client and the Healthcare client
send the same token from the same refresh, and the same ``x-goog-user-project``; impersonation
and the quota project come from the config; a 403 asking for a quota project says how to set one.

No network: a service-account key made here, google-auth's real JWT flow against a local token
endpoint, a local IAM ``generateAccessToken`` endpoint, and scripted servers standing in for
both APIs (they record every request's headers).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import google.auth.iam
import google.auth.impersonated_credentials
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cloudkit import EmulatorPair, fill_bucket

sys.path.insert(0, str(Path(__file__).parent / "healthcare"))
from hc_scripted import (  # noqa: E402  (tests/healthcare holds the scripted servers)
    Answer,
    RecordingPolicy,
    ScriptedServer,
    TokenEndpoint,
    secrets_in,
    start_scripted,
    start_token_endpoint,
    write_key,
)

from bulkmover.config import Config, parse_config  # noqa: E402
from bulkmover.corpus import CorpusSpec, write_corpus  # noqa: E402
from bulkmover.errors import ApiError, ConfigError  # noqa: E402
from bulkmover.execution.runner import RunOptions, execute  # noqa: E402
from bulkmover.gcs.client import storage_client  # noqa: E402
from bulkmover.healthcare.auth import (  # noqa: E402
    SCOPES,
    Credentials,
    GoogleCredentials,
    credentials_for,
    load_credentials,
)
from bulkmover.healthcare.calls import GET_DICOM_STORE  # noqa: E402
from bulkmover.healthcare.client import HealthcareClient  # noqa: E402
from bulkmover.healthcare.failures import error_from_response  # noqa: E402
from bulkmover.planning.plan import plan_async  # noqa: E402

SA = "mover@p.iam.gserviceaccount.com"
TARGET_SA = "importer@hospital-prod.iam.gserviceaccount.com"
OP_NAME = "projects/p/locations/l/datasets/d/operations/1"


@pytest.fixture
async def token_endpoint() -> AsyncIterator[TokenEndpoint]:
    endpoint, server = await start_token_endpoint()
    yield endpoint
    await server.close()


@pytest.fixture
async def healthcare() -> AsyncIterator[ScriptedServer]:
    """Stands in for the Healthcare API (``target.endpoint``)."""
    server, test_server = await start_scripted()
    yield server
    await test_server.close()


@pytest.fixture
async def storage() -> AsyncIterator[ScriptedServer]:
    """Stands in for Cloud Storage (``storage.endpoint``): an empty listing."""
    server, test_server = await start_scripted()
    server.default = Answer(200, {"kind": "storage#objects"})
    yield server
    await test_server.close()


class IamEndpoint:
    """The IAM Credentials API's ``generateAccessToken``: imp-1, imp-2, ... for any caller."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], dict[str, object]]] = []
        self.refuse = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.headers), await request.json()))
        if self.refuse:
            body = {
                "error": {
                    "code": 403,
                    "message": "Permission 'iam.serviceAccounts.getAccessToken' denied",
                    "status": "PERMISSION_DENIED",
                }
            }
            return web.json_response(body, status=403)  # fmt: skip
        return web.json_response(
            {"accessToken": f"imp-{len(self.seen)}", "expireTime": "2099-01-01T00:00:00Z"}
        )


@pytest.fixture
async def iam(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IamEndpoint]:
    """google-auth's IAM endpoint pointed here (it formats the URL with the target principal at
    each refresh, so the config's path through ``load_credentials`` is the one tested)."""
    endpoint = IamEndpoint()
    app = web.Application()
    app.router.add_post("/{tail:.*}", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    endpoint.url = f"http://127.0.0.1:{server.port}"
    monkeypatch.setattr(
        google.auth.iam,
        "_IAM_ENDPOINT",
        endpoint.url + "/v1/projects/-/serviceAccounts/{}:generateAccessToken",
    )
    yield endpoint
    await server.close()


def job(tmp_path: Path, hc: str, gcs: str, credentials: str) -> Config:
    text = (
        f"target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: '{hc}'}}\n"
        f"storage: {{endpoint: '{gcs}', max_attempts: 2}}\n"
        "import: {source: 'gs://pacs-dump/site/**.dcm'}\n"
        f"credentials: {credentials}\n"
        "state: state.db\n"
    )
    return parse_config(text, tmp_path / "job.yaml")


async def one_call_each(config: Config, creds: Credentials | None = None) -> None:
    """What a run does with its credentials: load them (unless given), then one Healthcare call
    and one Cloud Storage page (the storage client finds the job's credential by itself)."""
    creds = creds or await load_credentials(config.credentials)
    async with HealthcareClient(
        endpoint=config.target.endpoint or "", credentials=creds, retry=RecordingPolicy()
    ) as client:
        await client.get_operation(OP_NAME)
    async with storage_client(config, 4) as gcs:
        assert gcs.credentials is creds  # the same object: one token, one refresh, one lock
        await gcs.list_page("pacs-dump", {"prefix": "site/"})


def auth_of(server: ScriptedServer) -> list[tuple[str | None, str | None]]:
    return [(s.headers.get("Authorization"), s.headers.get("x-goog-user-project")) for s in
            server.seen]  # fmt: skip


async def test_both_apis_get_one_token_and_the_quota_project(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    healthcare: ScriptedServer,
    storage: ScriptedServer,
) -> None:
    key = write_key(tmp_path, token_endpoint.url)
    config = job(
        tmp_path,
        healthcare.url,
        storage.url,
        f"{{kind: service_account, key_file: '{key}', quota_project: billing-proj}}",
    )
    healthcare.default = Answer(200, {"name": OP_NAME, "done": True})
    await one_call_each(config)
    assert token_endpoint.issued == 1  # one refresh served both clients
    assert auth_of(healthcare) == [("Bearer tok-1", "billing-proj")]
    # An emulator endpoint is no reason to go anonymous: the same token reaches Cloud Storage.
    assert auth_of(storage) == [("Bearer tok-1", "billing-proj")]


async def test_application_default_credentials_reach_both_apis(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    healthcare: ScriptedServer,
    storage: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", str(write_key(tmp_path, token_endpoint.url))
    )
    config = job(tmp_path, healthcare.url, storage.url, "{kind: adc}")
    healthcare.default = Answer(200, {"name": OP_NAME})
    await one_call_each(config)
    assert token_endpoint.issued == 1
    assert auth_of(healthcare) == auth_of(storage) == [("Bearer tok-1", None)]


async def test_impersonation_from_the_config(
    tmp_path: Path,
    token_endpoint: TokenEndpoint,
    iam: IamEndpoint,
    healthcare: ScriptedServer,
    storage: ScriptedServer,
) -> None:
    key = write_key(tmp_path, token_endpoint.url)
    config = job(
        tmp_path,
        healthcare.url,
        storage.url,
        f"{{kind: service_account, key_file: '{key}', impersonate: {TARGET_SA},"
        " quota_project: billing-proj}",
    )
    healthcare.default = Answer(200, {"name": OP_NAME})
    creds = await load_credentials(config.credentials)
    assert isinstance(creds, GoogleCredentials)
    inner = creds.google
    assert isinstance(inner, google.auth.impersonated_credentials.Credentials)
    assert inner._target_principal == TARGET_SA and list(inner._target_scopes) == list(SCOPES)
    assert TARGET_SA in repr(creds) and SA in repr(creds)
    await one_call_each(config, creds)
    # The key's own token went to the IAM API only, for the target account's token.
    [(path, headers, body)] = iam.seen
    assert path == f"/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken"
    assert headers["Authorization"] == "Bearer tok-1"
    assert body["scope"] == list(SCOPES) and body["lifetime"] == "3600s"
    assert auth_of(healthcare) == auth_of(storage) == [("Bearer imp-1", "billing-proj")]


async def test_impersonation_refused_says_which_role_on_which_account(
    tmp_path: Path, token_endpoint: TokenEndpoint, iam: IamEndpoint, healthcare: ScriptedServer
) -> None:
    iam.refuse = True
    key = write_key(tmp_path, token_endpoint.url)
    config = job(
        tmp_path, healthcare.url, healthcare.url,
        f"{{kind: service_account, key_file: '{key}', impersonate: {TARGET_SA}}}",
    )  # fmt: skip
    creds = await load_credentials(config.credentials)
    with pytest.raises(ApiError) as caught:
        await creds.headers()
    message = str(caught.value)
    assert "roles/iam.serviceAccountTokenCreator" in message and TARGET_SA in message
    assert f"--member=serviceAccount:{SA}" in message
    assert secrets_in(message) == []


async def test_anonymous_sends_no_credentials_to_cloud_storage(
    tmp_path: Path, storage: ScriptedServer
) -> None:
    config = job(tmp_path, storage.url, storage.url, "{kind: anonymous}")
    async with storage_client(config, 4) as gcs:
        await gcs.list_page("pacs-dump", {})
        assert gcs.anonymous
    assert auth_of(storage) == [(None, None)]


async def test_a_refused_storage_token_is_replaced_once(
    tmp_path: Path, token_endpoint: TokenEndpoint, storage: ScriptedServer
) -> None:
    key = write_key(tmp_path, token_endpoint.url)
    config = job(
        tmp_path, storage.url, storage.url, f"{{kind: service_account, key_file: '{key}'}}"
    )
    storage.then(storage.error(401, "UNAUTHENTICATED"))
    async with storage_client(config, 4) as gcs:
        await gcs.list_page("pacs-dump", {})
    assert [a for a, _ in auth_of(storage)] == ["Bearer tok-1", "Bearer tok-2"]


async def test_the_job_credential_is_shared_per_event_loop(tmp_path: Path) -> None:
    key = write_key(tmp_path, "http://127.0.0.1:1/token")
    config = job(
        tmp_path, "http://h:1", "http://g:1", f"{{kind: service_account, key_file: '{key}'}}"
    )
    first = await credentials_for(config.credentials)
    assert await credentials_for(config.credentials) is first
    # The (kind, key_file) call a run makes registers the credential storage_client then uses.
    again = await load_credentials("service_account", key)
    assert again is not first and await credentials_for(config.credentials) is again


QUOTA_PROJECT_MISSING = (
    "Your application is authenticating by using local Application Default Credentials. The"
    " healthcare.googleapis.com API requires a quota project, which is not set by default."
)


@pytest.mark.parametrize(
    "error",
    [
        {"code": 403, "message": QUOTA_PROJECT_MISSING, "status": "PERMISSION_DENIED"},
        {
            "code": 403,
            "message": "Caller does not have required permission to use project billing-proj.",
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "USER_PROJECT_DENIED",
                    "domain": "googleapis.com",
                }
            ],
        },
        {
            "code": 403,
            "message": "Cloud Healthcare API has not been used in project 764086051850 before"
            " or it is disabled.",
            "status": "PERMISSION_DENIED",
        },
    ],
    ids=["requires a quota project", "USER_PROJECT_DENIED", "billed to gcloud's project"],
)
def test_a_403_about_the_quota_project_says_how_to_set_it(error: dict[str, object]) -> None:
    call = GET_DICOM_STORE.on("projects/p/locations/l/datasets/d/dicomStores/s", "get store")
    message = str(error_from_response(call, 403, json.dumps({"error": error}).encode()))
    assert "credentials.quota_project" in message
    assert "gcloud auth application-default set-quota-project" in message
    assert "grant the caller" not in message  # not a role problem


def test_a_403_about_a_role_keeps_the_role_hint() -> None:
    call = GET_DICOM_STORE.on("projects/p/locations/l/datasets/d/dicomStores/s", "get store")
    body = {"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}
    message = str(error_from_response(call, 403, json.dumps(body).encode()))
    assert "grant the caller" in message and "quota_project" not in message


async def test_cloud_storage_403_about_the_quota_project(
    tmp_path: Path, storage: ScriptedServer
) -> None:
    config = job(tmp_path, storage.url, storage.url, "{kind: anonymous}")
    storage.then(storage.error(403, "PERMISSION_DENIED", QUOTA_PROJECT_MISSING))
    async with storage_client(config, 4) as gcs:
        with pytest.raises(ApiError) as caught:
            await gcs.list_page("pacs-dump", {})
    assert "credentials.quota_project" in str(caught.value)
    assert "roles/storage.objectViewer" not in str(caught.value)


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        ("{impersonate: not-an-email}", "is not a service-account e-mail"),
        ("{quota_project: My Project}", "is not a project ID"),
        ("{kind: anonymous, impersonate: a@b.iam.gserviceaccount.com}", "impersonate needs Google"),
        ("{kind: anonymous, quota_project: billing-proj}", "quota_project needs Google"),
    ],
)
def test_bad_credential_settings_are_one_line(tmp_path: Path, credentials: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        job(tmp_path, "http://h:1", "http://g:1", credentials)
    assert "job.yaml:4:" in str(caught.value)


class RecordingProxy:
    """Forwards every request to ``upstream`` (one of the real emulators), keeping its headers:
    what reached the emulator, without the emulator having to record anything."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[dict[str, str]] = []
        self.url = ""
        self._server: TestServer | None = None
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=answer.status, body=body, headers=kept)

    async def __aenter__(self) -> RecordingProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=2**30)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = f"http://127.0.0.1:{self._server.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._session is not None
        await self._server.close()
        await self._session.close()


HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


async def test_the_same_token_and_quota_project_reach_both_emulators(
    tmp_path: Path, token_endpoint: TokenEndpoint
) -> None:
    """The real emulators (the Healthcare one requiring a bearer token) behind recording
    proxies: planning lists Cloud Storage, then the Healthcare client creates the store and
    reads its metrics, all with the one token and the quota project."""
    cloud = EmulatorPair(tmp_path / "cloud", "--require-auth")
    try:
        fill_bucket(cloud.gcs.url, "pacs-dump", {f"site/{i}.dcm": b"x" for i in range(3)})
        async with RecordingProxy(cloud.gcs.url) as gcs, RecordingProxy(cloud.hc.url) as hc:
            key = write_key(tmp_path, token_endpoint.url)
            config = job(
                tmp_path,
                hc.url,
                gcs.url,
                f"{{kind: service_account, key_file: '{key}', quota_project: billing-proj}}",
            )
            config = config.model_copy(update={"state": tmp_path / "state.db"})
            outcome = await plan_async(config)
            assert outcome.totals.objects == 3
            creds = await credentials_for(config.credentials)
            async with HealthcareClient(endpoint=hc.url, credentials=creds) as client:
                await client.ensure_dicom_store(config.target.store_path)
                metrics = await client.get_dicom_store_metrics(config.target.store_path)
            assert metrics.instance_count == 0
    finally:
        cloud.stop()
    assert token_endpoint.issued == 1
    for proxy in (gcs, hc):
        assert proxy.seen  # each API was called
        sent = {(h.get("Authorization"), h.get("x-goog-user-project")) for h in proxy.seen}
        assert sent == {("Bearer tok-1", "billing-proj")}


async def test_a_run_sends_the_quota_project_to_both_apis(
    tmp_path: Path, token_endpoint: TokenEndpoint
) -> None:
    """A whole ``run`` (plan, imports, outcomes) behind the recording proxies."""
    cloud = EmulatorPair(tmp_path / "cloud", "--require-auth")
    try:
        spec = CorpusSpec(studies=2, series_per_study=1, instances_per_series=2, seed=3)
        await write_corpus("gs://pacs-dump/site", spec, storage_endpoint=cloud.gcs.url)
        async with RecordingProxy(cloud.gcs.url) as gcs, RecordingProxy(cloud.hc.url) as hc:
            key = write_key(tmp_path, token_endpoint.url)
            config = job(
                tmp_path,
                hc.url,
                gcs.url,
                f"{{kind: service_account, key_file: '{key}', quota_project: billing-proj}}",
            )
            config = config.model_copy(update={"state": tmp_path / "state.db"})
            result = await execute(config, options=RunOptions(create_store=True, tick=0.05))
            assert result.totals.done == result.totals.shards
    finally:
        cloud.stop()
    for proxy in (gcs, hc):
        sent = {(h.get("Authorization"), h.get("x-goog-user-project")) for h in proxy.seen}
        assert sent == {("Bearer tok-1", "billing-proj")}
