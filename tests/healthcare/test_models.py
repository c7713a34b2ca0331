"""Operation, Logging and retry models as pure units, checked against the spec's JSON examples."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkmover.healthcare import (
    DatasetPath,
    ErrorClass,
    LogEntry,
    Operation,
    OperationsPage,
    PollSchedule,
    RetryPolicy,
    RpcStatus,
    classify_status,
    operation_errors_filter,
    operations_started_since,
    wait_for_operation,
)
from bulkmover.healthcare.failures import ServerError
from bulkmover.healthcare.operations import IMPORT_METHOD
from bulkmover.retry import parse_retry_after

DATASET = DatasetPath("P", "L", "D")
SPEC_OPERATION = {
    "name": "projects/P/locations/L/datasets/D/operations/OPERATION_ID",
    "done": True,
    "metadata": {
        "@type": "type.googleapis.com/google.cloud.healthcare.v1.OperationMetadata",
        "apiMethodName": "google.cloud.healthcare.v1.dicom.DicomService.ImportDicomData",
        "createTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-01T00:05:00Z",
        "logsUrl": "https://console.cloud.google.com/logs/query/...",
        "counter": {"success": "1200", "failure": "3"},
    },
    "response": {
        "@type": "type.googleapis.com/google.cloud.healthcare.v1.dicom.ImportDicomDataResponse"
    },
}


def test_spec_operation_parses_to_plain_ints_and_times() -> None:
    op = Operation.model_validate(SPEC_OPERATION)
    assert (op.id, op.dataset, op.done, op.succeeded, op.failed) == (
        "OPERATION_ID",
        DATASET,
        True,
        True,
        False,
    )
    assert (op.counter.success, op.counter.failure, op.counter.pending) == (1200, 3, 0)
    assert op.metadata.api_method_name == IMPORT_METHOD
    assert op.metadata.end_time - op.metadata.create_time == timedelta(minutes=5)  # type: ignore[operator]
    assert op.metadata.create_time.tzinfo is not None  # type: ignore[union-attr]
    assert op.error_class is None


@given(st.integers(min_value=0, max_value=2**63 - 1), st.integers(0, 2**40))
def test_int64_counters_round_trip(success: int, pending: int) -> None:
    op = Operation.model_validate(
        {"name": "projects/P/locations/L/datasets/D/operations/1",
         "metadata": {"counter": {"success": str(success), "pending": str(pending)}}}
    )  # fmt: skip
    assert (op.counter.success, op.counter.failure, op.counter.pending) == (success, 0, pending)


def test_running_and_failed_operations() -> None:
    running = Operation.model_validate({"name": "projects/P/locations/L/datasets/D/operations/2"})
    assert not running.done and running.counter.success == 0 and not running.failed
    failed = Operation.model_validate(
        {
            "name": "projects/P/locations/L/datasets/D/operations/3",
            "done": True,
            "metadata": {"cancelRequested": True},
            "error": {"code": 1, "message": "Operation was cancelled"},
        }
    )
    assert failed.failed and failed.metadata.cancel_requested
    assert failed.error_class is ErrorClass.CANCELLED
    assert str(failed.error) == "CANCELLED: Operation was cancelled"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (8, ErrorClass.TRANSIENT),
        (14, ErrorClass.TRANSIENT),
        (13, ErrorClass.TRANSIENT),
        (10, ErrorClass.TRANSIENT),
        (4, ErrorClass.TRANSIENT),
        (3, ErrorClass.PERMANENT),
        (5, ErrorClass.PERMANENT),
        (7, ErrorClass.PERMANENT),
        (2, ErrorClass.PERMANENT),
        (99, ErrorClass.PERMANENT),
        (1, ErrorClass.CANCELLED),
    ],
)
def test_classify_whole_operation_errors(code: int, expected: ErrorClass) -> None:
    assert classify_status(RpcStatus(code=code, message="x")) is expected


def test_operations_page_unpacks() -> None:
    page = OperationsPage.from_json({"operations": [SPEC_OPERATION], "nextPageToken": "abc"})
    ops, token = page
    assert token == "abc" and ops[0].counter.failure == 3
    assert OperationsPage.from_json({}).next_page_token is None


def test_poll_schedule_grows_with_age_within_bounds() -> None:
    schedule = PollSchedule(minimum=1.0, maximum=30.0, fraction=0.25)
    delays = [schedule.delay(age) for age in (0, 2, 8, 40, 100, 10_000)]
    assert delays == [1.0, 1.0, 2.0, 10.0, 25.0, 30.0]


class FakeOperations:
    """An in-memory operations reader for the polling helpers (pure logic, no HTTP)."""

    def __init__(self, ops: list[dict[str, object]], page_size: int = 2) -> None:
        self.ops = ops
        self.page_size = page_size
        self.gets = 0

    async def get_operation(self, name: str) -> Operation:
        self.gets += 1
        return Operation.model_validate(
            {"name": name, "done": self.gets >= 3, "metadata": {"counter": {"pending": "5"}}}
        )

    async def list_operations(
        self,
        dataset: DatasetPath,
        filter: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> OperationsPage:
        start = int(page_token or 0)
        chunk = self.ops[start : start + self.page_size]
        more = start + self.page_size < len(self.ops)
        return OperationsPage.from_json(
            {"operations": chunk, "nextPageToken": str(start + self.page_size) if more else ""}
        )


async def test_wait_for_operation_polls_until_done() -> None:
    reader = FakeOperations([])
    seen: list[bool] = []
    op = await wait_for_operation(
        reader, "projects/P/locations/L/datasets/D/operations/9",
        schedule=PollSchedule(minimum=0.0, maximum=0.0), on_poll=lambda o: seen.append(o.done),
    )  # fmt: skip
    assert op.done and seen == [False, False, True]


async def test_operations_started_since_finds_the_unknown_candidates() -> None:
    sent = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def op(i: int, minutes: float, method: str = IMPORT_METHOD) -> dict[str, object]:
        created = (sent + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        return {
            "name": f"projects/P/locations/L/datasets/D/operations/{i}",
            "metadata": {"apiMethodName": method, "createTime": created},
        }

    reader = FakeOperations(
        [
            op(1, -10),  # long before the ambiguous POST
            op(2, 0.1),  # known: recorded in the state already
            op(3, 0.2),  # the candidate
            op(4, 0.3, "google.cloud.healthcare.v1.dicom.DicomService.ExportDicomData"),
            op(5, -0.2),  # within clock skew
        ]
    )
    found = await operations_started_since(
        reader, DATASET, sent, known=["projects/P/locations/L/datasets/D/operations/2"]
    )
    assert sorted(o.id for o in found) == ["3", "5"]
    naive = await operations_started_since(reader, DATASET, sent.replace(tzinfo=None))
    assert sorted(o.id for o in naive) == ["2", "3", "5"]


SPEC_LOG_ENTRY = {
    "logName": "projects/P/logs/healthcare.googleapis.com%2Fimport_dicom",
    "resource": {
        "type": "healthcare_dicom_store",
        "labels": {"project_id": "P", "location": "L", "dataset_id": "D", "dicom_store_id": "S"},
    },
    "operation": {"id": "OPERATION_ID", "producer": "..."},
    "severity": "ERROR",
    "timestamp": "2026-01-01T00:01:02Z",
    "jsonPayload": {
        "@type": "type.googleapis.com/google.cloud.healthcare.logging.ImportDicomLogEntry",
        "source": "gs://BUCKET/PATH/file.dcm",
        "error": {"code": 3, "message": "empty DICOM instance found"},
    },
}


def test_spec_log_entries() -> None:
    entry = LogEntry.model_validate(SPEC_LOG_ENTRY)
    assert entry.source == "gs://BUCKET/PATH/file.dcm" and entry.resource_name is None
    assert (entry.error_code, entry.error_message) == (3, "empty DICOM instance found")
    assert entry.operation_id == "OPERATION_ID" and entry.resource.labels["dicom_store_id"] == "S"
    export = LogEntry.model_validate(
        {"jsonPayload": {"resourceName": "studies/1/series/2/instances/3"}, "severity": "ERROR"}
    )
    assert export.resource_name == "studies/1/series/2/instances/3"
    assert export.source is None and export.error is None and export.operation_id is None


def test_log_filter_quotes_values() -> None:
    text = operation_errors_filter('a"b\\c', kind="export")
    # Only the (unique) id: label spellings and the logName are undocumented, the payload type
    # and the store are checked on the entries (LogEntry.is_error_of).
    assert text == 'operation.id="a\\"b\\\\c"'


@given(retry=st.integers(min_value=0, max_value=30), seed=st.integers())
def test_backoff_is_full_jitter_within_the_cap(retry: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=32.0, rng=random.Random(seed))
    delay = policy.delay(retry)
    assert 0.0 <= delay <= min(32.0, 0.5 * 2**retry)


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_retry_after=120.0, rng=random.Random(1))
    assert 7.0 <= policy.delay(0, retry_after=7.0) <= 7.5
    assert 120.0 <= policy.delay(3, retry_after=86_400.0) <= 120.5


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None


def test_server_error_bodies() -> None:
    google = ServerError.parse(
        b'{"error": {"code": 403, "message": "no\\naccess", "status": "PERMISSION_DENIED"}}'
    )
    assert (google.message, google.reason) == ("no access", "PERMISSION_DENIED")
    oauth = ServerError.parse(b'{"error": "invalid_token", "error_description": "expired"}')
    assert (oauth.message, oauth.reason) == ("expired", "invalid_token")
    html = ServerError.parse(b"<html>\n<b>502</b> bad gateway</html>" + b"x" * 1000)
    assert html.reason is None and "\n" not in html.message and len(html.message) <= 300
