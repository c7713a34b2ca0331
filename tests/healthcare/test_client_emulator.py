"""HealthcareClient against the real Healthcare emulator process (and our GCS emulator).

Each emulator runs with the knobs one group of tests needs: plain, slow operations with a cap on
running operations, a tiny request quota, injected faults, required auth.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hc_cloud import SeededBucket, admin_operations, seed_bucket, start_healthcare
from hc_scripted import RecordingPolicy, TokenEndpoint, secrets_in, write_key

from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError
from bulkmover.execution.limits import AdaptiveLimits, LimitSettings
from bulkmover.healthcare import (
    IMPORT_METHOD,
    ErrorClass,
    Family,
    HealthcareClient,
    OutcomeUnknownError,
    RequestEvent,
    RetryPolicy,
    StorePath,
    operation_errors,
    operations_started_since,
    service_account_file,
    wait_for_operation,
)
from bulkmover.healthcare.operations import EXPORT_METHOD, PollSchedule

QUICK_POLL = PollSchedule(minimum=0.05, maximum=0.5)


@pytest.fixture(scope="module")
def bucket(gcs_emulator: RunningServer) -> SeededBucket:
    return seed_bucket(gcs_emulator.url, f"hc-client-{uuid.uuid4().hex[:8]}")


@contextmanager
def _emulator(
    tmp_path_factory: pytest.TempPathFactory, gcs: RunningServer, *flags: str
) -> Iterator[RunningServer]:
    server = start_healthcare(tmp_path_factory.mktemp("healthcare"), gcs.url, *flags)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> Iterator[RunningServer]:
    with _emulator(tmp_path_factory, gcs_emulator, "--seed", "1") as server:
        yield server


@pytest.fixture(scope="module")
def tight(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> Iterator[RunningServer]:
    """Operations last at least 30 s and only one may run at a time."""
    with _emulator(
        tmp_path_factory, gcs_emulator, "--operation-time", "30", "--max-running-operations", "1"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def faulty(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> Iterator[RunningServer]:
    with _emulator(tmp_path_factory, gcs_emulator, "--fault-rate", "0.3", "--seed", "7") as server:
        yield server


def store_for(name: str) -> StorePath:
    return StorePath("client-tests", "us-central1", f"ds-{name}", "store")


async def test_import_export_operations_and_logs(
    plain: RunningServer, bucket: SeededBucket
) -> None:
    store = store_for("plain")
    async with HealthcareClient(endpoint=plain.url) as client:
        assert await client.ensure_dicom_store(store) is True
        assert await client.ensure_dicom_store(store) is False
        assert (await client.get_dicom_store(store)).name == store.name

        ref = await client.import_dicom(store, bucket.uri("batch1/**.dcm"), "STANDARD")
        op = await wait_for_operation(client, ref.name, schedule=QUICK_POLL, max_wait=60)
        assert op.succeeded and op.error_class is None
        assert (op.counter.success, op.counter.failure) == (len(bucket.good), len(bucket.bad))
        assert op.metadata.api_method_name == IMPORT_METHOD
        assert op.metadata.create_time is not None and op.metadata.end_time is not None

        errors = [e async for e in operation_errors(client, store, op.id)]
        assert [e.source for e in errors] == [bucket.uri(bucket.bad[0])]
        assert errors[0].error_code is not None and errors[0].error_message
        assert errors[0].operation_id == op.id

        out = await client.export_dicom(
            store, bucket.uri("exported"), mime_type="application/dicom"
        )
        exported = await wait_for_operation(client, out.name, schedule=QUICK_POLL, max_wait=60)
        assert exported.succeeded and exported.counter.success == len(bucket.good)
        assert exported.metadata.api_method_name == EXPORT_METHOD

        pages = [p async for p in client.iter_operation_pages(store.dataset, page_size=1)]
        listed = [o.name for p in pages for o in p.operations]
        assert ref.name in listed and out.name in listed
        assert all(len(p.operations) <= 1 for p in pages) and pages[-1].next_page_token is None
        done, _ = await client.list_operations(store.dataset, "done=false")
        assert done == []  # both finished

        with pytest.raises(ApiError) as caught:
            await client.import_dicom(store_for("missing"), bucket.uri("batch1/**.dcm"))
        assert caught.value.status == 404 and "ds-missing" in str(caught.value)
        with pytest.raises(ApiError) as caught:
            await client.import_dicom(store, f"gs://{bucket.bucket}/a/**/b*.dcm")
        assert caught.value.status == 400 and not caught.value.retriable
    counts = client.stats
    assert counts[Family.LRO_START].requests == 4 and counts[Family.LOGGING].requests >= 1


async def test_running_cap_refusal_and_cancel(tight: RunningServer, bucket: SeededBucket) -> None:
    store = store_for("tight")
    events: list[RequestEvent] = []
    limits = AdaptiveLimits(LimitSettings(max_concurrency=4))
    async with HealthcareClient(
        endpoint=tight.url, retry=RecordingPolicy(max_attempts=2)
    ) as client:
        client.listeners.append(events.append)
        await client.ensure_dicom_store(store)
        first = await client.import_dicom(store, bucket.uri("batch1/**.dcm"))
        running = await client.get_operation(first.name)
        assert not running.done

        with pytest.raises(ApiError) as caught:  # one may run: the second start is refused
            await client.import_dicom(store, bucket.uri("batch1/**.dcm"))
        assert caught.value.status == 429 and caught.value.retriable
        assert "too many" in str(caught.value) and caught.value.retry_after
        refused = [e for e in events if e.throttled]
        assert [e.family for e in refused] == [Family.LRO_START] * 2
        assert all("too many long-running operations" in (e.message or "") for e in refused)
        changes = limits.on_throttled(
            Family.LRO_START, "429 on import start", concurrency=True, in_flight=1
        )
        assert limits.concurrency == 1 and "429 on import start" in str(changes[0])

        await client.cancel_operation(first.name)
        cancelled = await wait_for_operation(client, first.name, schedule=QUICK_POLL, max_wait=30)
        assert cancelled.failed and cancelled.error_class is ErrorClass.CANCELLED


async def test_request_quota_429_with_retry_after(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> None:
    with _emulator(tmp_path_factory, gcs_emulator, "--requests-per-minute", "6") as server:
        store = store_for("quota")
        policy = RecordingPolicy(max_attempts=3)
        async with HealthcareClient(endpoint=server.url, retry=policy) as client:
            await client.ensure_dicom_store(store)  # dicom_ops quota (and one operations.get)
            with pytest.raises(ApiError) as caught:
                for _ in range(10):
                    await client.list_operations(store.dataset)
        err = caught.value
        assert err.status == 429 and err.retriable and err.retry_after and err.retry_after >= 1
        assert "Quota exceeded" in str(err) and "after 3 attempts" in str(err)
        assert client.stats[Family.OPERATIONS].throttled == 3
        assert client.stats[Family.DICOM_OPS].throttled == 0
        assert [after for _, after in policy.asked][-2:] == [err.retry_after] * 2  # type: ignore[attr-defined]


async def test_faults_are_retried_and_ambiguous_starts_resolved(
    faulty: RunningServer, bucket: SeededBucket
) -> None:
    """With 30 % of requests failing (some after the effect), every read succeeds in the end, and
    every started operation is either returned or found by ``operations_started_since``."""
    store = store_for("faulty")
    policy = RetryPolicy(max_attempts=12, base_delay=0.01, max_delay=0.05)
    async with HealthcareClient(endpoint=faulty.url, retry=policy) as client:
        await client.ensure_dicom_store(store)
        for _ in range(15):
            assert (await client.get_dicom_store(store)).name == store.name
        known: set[str] = set()
        ambiguous = 0
        for _ in range(12):
            try:
                known.add((await client.import_dicom(store, bucket.uri("batch1/**.dcm"))).name)
            except OutcomeUnknownError as err:
                ambiguous += 1
                found = await operations_started_since(
                    client, store.dataset, err.sent_at, known=known
                )
                assert len(found) <= 1
                known.update(op.name for op in found)
    stats = client.stats
    assert stats.throttled == 0
    assert sum(s.server_errors + s.connection_errors for s in stats.families.values()) > 0
    assert ambiguous > 0 and stats[Family.LRO_START].outcome_unknown == ambiguous
    started = {
        str(op["name"])
        for op in admin_operations(faulty.url)
        if str(op["store"]) == store.name and "Import" in str(op["method"])
    }
    assert started == known  # nothing started behind our back, nothing lost


async def test_required_auth(
    tmp_path_factory: pytest.TempPathFactory,
    gcs_emulator: RunningServer,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
) -> None:
    store = store_for("auth")
    with _emulator(tmp_path_factory, gcs_emulator, "--require-auth") as server:
        async with HealthcareClient(endpoint=server.url) as anonymous:
            with pytest.raises(ApiError) as caught:
                await anonymous.get_dataset(store.dataset)
        assert caught.value.status == 401 and "set credentials to adc or service_account" in str(
            caught.value
        )
        assert anonymous.stats.requests == 1  # not retried

        creds = service_account_file(write_key(tmp_path, token_endpoint.url))
        async with HealthcareClient(endpoint=server.url, credentials=creds) as client:
            assert await client.ensure_dicom_store(store) is True
            assert (await client.get_dataset(store.dataset)).name == store.dataset.name
            shown = repr(client)
        assert token_endpoint.issued == 1
        assert secrets_in(shown + "\n".join(server.output)) == []
