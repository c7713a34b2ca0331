"""HealthcareClient against a scripted local server: retries, Retry-After, errors, ambiguity."""

from __future__ import annotations

import pytest
from hc_scripted import Answer, RecordingPolicy, ScriptedServer, closed_port_url

from bulkmover.errors import ApiError, ConfigError
from bulkmover.execution.limits import RateLimiter
from bulkmover.healthcare import (
    DatasetPath,
    Family,
    HealthcareClient,
    OutcomeUnknownError,
    RequestEvent,
    StorePath,
)
from bulkmover.healthcare.client import USER_AGENT

STORE = StorePath("p", "us-central1", "d", "s")
OP_NAME = "projects/p/locations/us-central1/datasets/d/operations/123"


def client_for(
    server: ScriptedServer, policy: RecordingPolicy, **kwargs: object
) -> HealthcareClient:
    return HealthcareClient(endpoint=server.url, retry=policy, **kwargs)  # type: ignore[arg-type]


async def test_import_sends_the_documented_request(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(Answer(200, {"name": OP_NAME}))
    async with client_for(scripted, fast_retry) as client:
        ref = await client.import_dicom(STORE, "gs://b/dir/**.dcm", blob_storage_class="NEARLINE")
    assert (ref.name, ref.id, ref.dataset) == (OP_NAME, "123", STORE.dataset)
    (seen,) = scripted.seen
    assert seen.method == "POST"
    assert seen.path == f"/v1/{STORE.name}:import"
    assert seen.body == {
        "gcsSource": {"uri": "gs://b/dir/**.dcm"},
        "blobStorageSettings": {"blobStorageClass": "NEARLINE"},
    }
    assert seen.headers["User-Agent"] == USER_AGENT
    assert "Authorization" not in seen.headers  # anonymous


async def test_export_and_v1beta1_paths(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(Answer(200, {"name": OP_NAME}))
    async with client_for(scripted, fast_retry, api_version="v1beta1") as client:
        await client.export_dicom(
            STORE, "gs://out/dir", mime_type="application/dicom", filter_uri="gs://f/list.txt"
        )
    (seen,) = scripted.seen
    assert seen.path == f"/v1beta1/{STORE.name}:export"
    assert seen.body == {
        "gcsDestination": {"uriPrefix": "gs://out/dir", "mimeType": "application/dicom"},
        "filterConfig": {"resourcePathsGcsUri": "gs://f/list.txt"},
    }


async def test_retries_transient_errors_then_succeeds_and_counts_them(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(
        scripted.error(503, "UNAVAILABLE"),
        scripted.error(429, "RESOURCE_EXHAUSTED", **{"Retry-After": "7"}),
        scripted.error(502, "BAD_GATEWAY"),
        Answer(200, {"name": OP_NAME, "done": True, "metadata": {"counter": {"success": "5"}}}),
    )
    events: list[RequestEvent] = []
    async with client_for(scripted, fast_retry) as client:
        client.listeners.append(events.append)
        op = await client.get_operation(OP_NAME)
    assert op.done and op.counter.success == 5
    assert [e.status for e in events] == [503, 429, 502, 200]
    assert [e.message for e in events] == ["boom", "boom", "boom", None]
    assert [e.retrying for e in events] == [True, True, True, False]
    assert fast_retry.asked == [(0, None), (1, 7.0), (2, None)]  # type: ignore[attr-defined]
    stats = client.stats[Family.OPERATIONS]
    assert (stats.requests, stats.throttled, stats.server_errors, stats.retries) == (4, 1, 2, 3)
    assert client.stats[Family.LRO_START].requests == 0


async def test_gives_up_after_max_attempts_with_a_retriable_error(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.default = scripted.error(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded", **{"Retry-After": "3"}
    )
    async with client_for(scripted, fast_retry) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_operations(STORE.dataset)
    err = caught.value
    assert len(scripted.seen) == 4
    assert (err.status, err.reason, err.retriable, err.retry_after) == (
        429,
        "RESOURCE_EXHAUSTED",
        True,
        3.0,
    )
    assert "after 4 attempts" in str(err) and "\n" not in str(err)


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (400, "INVALID_ARGUMENT", "rejected as invalid"),
        (
            403,
            "PERMISSION_DENIED",
            "healthcare.dicomStores.import (e.g. roles/healthcare.dicomEditor)",
        ),
        (404, "NOT_FOUND", f"{STORE.name} not found"),
        (409, "ALREADY_EXISTS", "already exists"),
    ],
)
async def test_client_errors_are_not_retried_and_say_how_to_fix(
    scripted: ScriptedServer, fast_retry: RecordingPolicy, status: int, reason: str, expected: str
) -> None:
    scripted.then(scripted.error(status, reason, "server says no"))
    async with client_for(scripted, fast_retry) as client:
        with pytest.raises(ApiError) as caught:
            await client.import_dicom(STORE, "gs://b/**.dcm")
    assert len(scripted.seen) == 1
    message = str(caught.value)
    assert expected in message and "server says no" in message and "\n" not in message
    assert caught.value.status == status and not caught.value.retriable
    assert not isinstance(caught.value, OutcomeUnknownError)


async def test_401_anonymous_says_credentials_are_needed(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(scripted.error(401, "UNAUTHENTICATED", "Request had invalid credentials."))
    async with client_for(scripted, fast_retry) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_dicom_store(STORE)
    assert len(scripted.seen) == 1
    assert caught.value.status == 401
    assert "set credentials to adc or service_account" in str(caught.value)


async def test_start_is_not_resent_after_an_ambiguous_500(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(scripted.error(500, "INTERNAL"))
    async with client_for(scripted, fast_retry) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.import_dicom(STORE, "gs://b/**.dcm")
    assert len(scripted.seen) == 1
    err = caught.value
    assert err.retriable and err.status == 500 and err.call.method == "dicomStores.import"
    assert "operations.list" in str(err)
    assert err.sent_at.tzinfo is not None
    assert client.stats[Family.LRO_START].outcome_unknown == 1


async def test_start_is_resent_when_the_answer_proves_nothing_started(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(
        scripted.error(429, "RESOURCE_EXHAUSTED"),
        scripted.error(503, "UNAVAILABLE"),
        Answer(200, {"name": OP_NAME}),
    )
    async with client_for(scripted, fast_retry) as client:
        ref = await client.import_dicom(STORE, "gs://b/**.dcm")
    assert ref.name == OP_NAME and len(scripted.seen) == 3


async def test_connection_lost_after_sending(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    """A reset after the server read the request: a read-only call is retried, a start is not."""
    scripted.then(Answer(reset=True), Answer(200, {}))
    async with client_for(scripted, fast_retry) as client:
        await client.cancel_operation(OP_NAME)  # a POST, but cancelling twice is harmless
        assert len(scripted.seen) == 2
        assert client.stats[Family.OPERATIONS].connection_errors == 1

        scripted.then(Answer(reset=True))
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.import_dicom(STORE, "gs://b/**.dcm")
    assert len(scripted.seen) == 3
    assert caught.value.status is None and "lost" in str(caught.value)


async def test_timeout_after_sending_is_ambiguous_for_a_start(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(Answer(200, {"name": OP_NAME}, delay=2.0))
    async with client_for(scripted, fast_retry, request_timeout=0.3) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.import_dicom(STORE, "gs://b/**.dcm")
    assert len(scripted.seen) == 1
    assert "no answer" in str(caught.value)


async def test_connection_refused_names_the_endpoint_and_retries() -> None:
    url = closed_port_url()
    policy = RecordingPolicy(max_attempts=3)
    async with HealthcareClient(endpoint=url, retry=policy) as client:
        with pytest.raises(ApiError) as caught:
            await client.import_dicom(STORE, "gs://b/**.dcm")  # never sent: safe to retry
    err = caught.value
    assert not isinstance(err, OutcomeUnknownError)
    assert err.retriable and f"cannot connect to {url}" in str(err)
    assert "after 3 attempts" in str(err)
    assert client.stats[Family.LRO_START].connection_errors == 3


async def test_bad_answers_are_clear_errors(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    scripted.then(
        Answer(200, raw=b"<html>proxy login</html>"),
        Answer(200, {"nothing": 1}),
        Answer(200, {"nothing": 1}),
        Answer(200, {"operations": [{"done": "maybe"}]}),
    )
    async with client_for(scripted, fast_retry) as client:
        with pytest.raises(ApiError, match="other than a JSON object"):
            await client.get_operation(OP_NAME)
        with pytest.raises(ApiError, match="names no operation"):
            await client.import_dicom(STORE, "gs://b/**.dcm")
        with pytest.raises(ApiError, match=r"\(name is missing or malformed\)"):
            await client.get_operation(OP_NAME)
        with pytest.raises(ApiError, match="unexpected answer"):
            await client.list_operations(STORE.dataset)


async def test_pages_and_hooks(scripted: ScriptedServer, fast_retry: RecordingPolicy) -> None:
    def op(i: int) -> dict[str, object]:
        return {"name": f"{OP_NAME[:-3]}{i}", "done": i % 2 == 0}

    scripted.then(
        Answer(200, {"operations": [op(1), op(2)], "nextPageToken": "t2"}),
        scripted.error(503, "UNAVAILABLE"),
        Answer(200, {"operations": [op(3)], "nextPageToken": ""}),
    )
    limiter_calls: list[Family] = []

    async def before(family: Family) -> None:
        limiter_calls.append(family)

    async with client_for(scripted, fast_retry, before_request=before) as client:
        pages = [page async for page in client.iter_operation_pages(STORE.dataset, "done=false", 2)]
    assert [[o.id for o in p.operations] for p in pages] == [["1", "2"], ["3"]]
    ops, token = pages[-1]
    assert token is None and len(ops) == 1
    assert [s.query for s in scripted.seen] == [
        {"pageSize": "2", "filter": "done=false"},
        {"pageSize": "2", "filter": "done=false", "pageToken": "t2"},
        {"pageSize": "2", "filter": "done=false", "pageToken": "t2"},
    ]
    assert limiter_calls == [Family.OPERATIONS] * 3  # every attempt passes the limiter


async def test_rate_limiter_as_before_request_hook(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    limiter = RateLimiter(600_000, burst=1)

    async def before(family: Family) -> None:
        await limiter.acquire()

    async with client_for(scripted, fast_retry, before_request=before) as client:
        for _ in range(3):
            await client.cancel_operation(OP_NAME)
    assert limiter.granted == 3
    assert [(s.method, s.path) for s in scripted.seen] == [("POST", f"/v1/{OP_NAME}:cancel")] * 3


async def test_log_entries_go_to_the_logging_endpoint(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    entry = {
        "logName": "projects/p/logs/healthcare.googleapis.com%2Fimport_dicom",
        "resource": {"type": "healthcare_dicom_store", "labels": {"dicom_store_id": "s"}},
        "operation": {"id": "123"},
        "severity": "ERROR",
        "timestamp": "2026-01-01T00:01:02Z",
        "jsonPayload": {
            "@type": "type.googleapis.com/google.cloud.healthcare.logging.ImportDicomLogEntry",
            "source": "gs://b/bad.dcm",
            "error": {"code": 3, "message": "empty DICOM instance found"},
        },
    }
    scripted.then(Answer(200, {"entries": [entry], "nextPageToken": "n"}), Answer(200, {}))
    async with HealthcareClient(
        endpoint="https://healthcare.googleapis.com",
        logging_endpoint=scripted.url,
        retry=fast_retry,
    ) as client:
        pages = [p async for p in client.iter_log_entry_pages(["projects/p"], 'operation.id="123"')]
    assert len(pages) == 2 and pages[1].entries == []
    (got,) = pages[0].entries
    assert (got.source, got.error_code, got.error_message, got.operation_id) == (
        "gs://b/bad.dcm",
        3,
        "empty DICOM instance found",
        "123",
    )
    assert scripted.seen[0].path == "/v2/entries:list"
    assert scripted.seen[0].body == {
        "resourceNames": ["projects/p"],
        "filter": 'operation.id="123"',
        "pageSize": 1000,
    }
    assert scripted.seen[1].body["pageToken"] == "n"


def test_endpoint_defaults_and_validation() -> None:
    google = HealthcareClient()
    assert google.logging_endpoint == "https://logging.googleapis.com"
    local = HealthcareClient(endpoint="http://127.0.0.1:9999/")
    assert (local.endpoint, local.logging_endpoint) == ("http://127.0.0.1:9999",) * 2
    with pytest.raises(ConfigError, match="v1 or v1beta1"):
        HealthcareClient(api_version="v2")
    with pytest.raises(ConfigError, match="not a base URL"):
        HealthcareClient(endpoint="healthcare.googleapis.com")


async def test_blob_storage_class_is_checked_before_sending(
    scripted: ScriptedServer, fast_retry: RecordingPolicy
) -> None:
    async with client_for(scripted, fast_retry) as client:
        with pytest.raises(ConfigError, match="blob storage class"):
            await client.import_dicom(STORE, "gs://b/x", "HOT")
    assert scripted.seen == []


def test_resource_names_parse_and_reject() -> None:
    assert StorePath.parse(f"/{STORE.name}/") == STORE
    assert DatasetPath.parse(STORE.dataset.name).store("s") == STORE
    with pytest.raises(ConfigError, match="invalid DICOM store name"):
        StorePath.parse("projects/p/locations/l/datasets/d")
    with pytest.raises(ConfigError):
        DatasetPath("p", "l", "bad/id")


async def test_a_trusted_500_can_be_declared_safe_to_resend(scripted: ScriptedServer) -> None:
    """The emulator fails with 500 before any effect; a caller may say so."""
    policy = RecordingPolicy()
    object.__setattr__(policy, "not_started_statuses", frozenset({429, 500, 503}))
    scripted.then(scripted.error(500, "INTERNAL"), Answer(200, {"name": OP_NAME}))
    async with client_for(scripted, policy) as client:
        assert (await client.import_dicom(STORE, "gs://b/**.dcm")).name == OP_NAME
    assert len(scripted.seen) == 2
