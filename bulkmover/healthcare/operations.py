"""Long-running operations: typed models, error classification and polling helpers.

The API returns ``google.longrunning.Operation`` JSON whose metadata is the Healthcare
``OperationMetadata`` with a ``ProgressCounter`` of int64 counts encoded as strings (a zero count
may be absent). These models turn that into plain ints once, at the boundary, so the executor and
the state layer never see wire strings.

>>> op = Operation.model_validate({"name": "projects/p/locations/l/datasets/d/operations/42",
...     "done": True, "metadata": {"counter": {"success": "1200", "failure": "3"}}})
>>> (op.id, op.counter.success, op.counter.failure, op.counter.pending)
('42', 1200, 3, 0)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from bulkmover.errors import ApiError
from bulkmover.healthcare.paging import iter_pages
from bulkmover.healthcare.resources import DatasetPath, split_operation_name

IMPORT_METHOD = "google.cloud.healthcare.v1.dicom.DicomService.ImportDicomData"
EXPORT_METHOD = "google.cloud.healthcare.v1.dicom.DicomService.ExportDicomData"


def same_method(name: str | None, method: str) -> bool:
    """Whether an operation's ``apiMethodName`` is ``method``, by the last dotted part: the
    package differs between v1 and v1beta1 (``...v1.dicom.DicomService.ImportDicomData``)."""
    return (name or "").rsplit(".", 1)[-1] == method.rsplit(".", 1)[-1]


class RpcCode(IntEnum):
    """google.rpc.Code, the ``code`` of a whole-operation error."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def code_name(code: int) -> str:
    """``8`` -> ``'RESOURCE_EXHAUSTED'``; unknown numbers stay numbers."""
    try:
        return RpcCode(code).name
    except ValueError:
        return f"code {code}"


class _Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored, models immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ProgressCounter(_Wire):
    """Counts of units (instances) an operation processed; absent fields are 0."""

    success: int = 0
    failure: int = 0
    pending: int = 0
    secondary_success: int = 0
    secondary_failure: int = 0

    @field_validator("*", mode="before")
    @classmethod
    def _int64(cls, value: Any) -> Any:
        # int64 arrives as a JSON string; None/"" mean "not reported", i.e. zero.
        if value is None or value == "":
            return 0
        return value


class OperationMetadata(_Wire):
    type_url: str | None = Field(default=None, alias="@type")
    api_method_name: str | None = None
    create_time: datetime | None = None
    end_time: datetime | None = None
    logs_url: str | None = None
    cancel_requested: bool = False
    counter: ProgressCounter = ProgressCounter()


class RpcStatus(_Wire):
    """google.rpc.Status: the error of a failed (or cancelled) operation."""

    code: int = 0
    message: str = ""
    details: list[dict[str, Any]] = []

    @property
    def code_name(self) -> str:
        return code_name(self.code)

    def __str__(self) -> str:
        return f"{self.code_name}: {self.message}" if self.message else self.code_name


class OperationName:
    """``id`` and ``dataset`` of anything that carries an operation's full ``name``."""

    name: str

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def dataset(self) -> DatasetPath:
        return split_operation_name(self.name)[0]


class Operation(_Wire, OperationName):
    """A Healthcare long-running operation as ``operations.get``/``list`` return it."""

    name: str
    done: bool = False
    metadata: OperationMetadata = OperationMetadata()
    error: RpcStatus | None = None
    response: dict[str, Any] | None = None

    @property
    def counter(self) -> ProgressCounter:
        return self.metadata.counter

    @property
    def succeeded(self) -> bool:
        """Done without a whole-operation error (per-file failures may still be counted)."""
        return self.done and self.error is None

    @property
    def failed(self) -> bool:
        return self.done and self.error is not None

    @property
    def error_class(self) -> ErrorClass | None:
        return classify_status(self.error) if self.failed and self.error else None


@dataclass(frozen=True)
class OperationRef(OperationName):
    """What starting an import/export returns: the operation's name (record it at once)."""

    name: str


class OperationsPage(NamedTuple):
    """One page of ``operations.list``: ``ops, token = page`` works; no token on the last page."""

    operations: list[Operation]
    next_page_token: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> OperationsPage:
        ops = [Operation.model_validate(item) for item in body.get("operations") or []]
        return cls(ops, body.get("nextPageToken") or None)


class ErrorClass(StrEnum):
    """What the executor does with a failed operation's shard."""

    TRANSIENT = "transient"  # requeue with backoff
    PERMANENT = "permanent"  # mark the shard failed with the error
    CANCELLED = "cancelled"  # someone cancelled it: the executor decides (usually requeue)


TRANSIENT_CODES = frozenset(
    {
        RpcCode.DEADLINE_EXCEEDED,
        RpcCode.RESOURCE_EXHAUSTED,
        RpcCode.ABORTED,
        RpcCode.INTERNAL,
        RpcCode.UNAVAILABLE,
    }
)


def classify_status(status: RpcStatus) -> ErrorClass:
    """Transient (RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL, ABORTED, DEADLINE_EXCEEDED) vs not.

    Anything else (INVALID_ARGUMENT for a bad wildcard, NOT_FOUND for a missing bucket,
    PERMISSION_DENIED for a service agent without access, UNKNOWN...) will fail again unchanged,
    so retrying it only burns quota.
    """
    if status.code == RpcCode.CANCELLED:
        return ErrorClass.CANCELLED
    if status.code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


@dataclass(frozen=True)
class PollSchedule:
    """How long to wait before polling an operation again, from its age.

    Short operations are seen soon after they end; long ones are not polled more often than
    ``fraction`` of their age (so polling costs O(log duration) calls), within [minimum, maximum].

    >>> PollSchedule(minimum=1.0, maximum=30.0, fraction=0.25).delay(age=100.0)
    25.0
    """

    minimum: float = 1.0
    maximum: float = 30.0
    fraction: float = 0.25

    def delay(self, age: float) -> float:
        return min(self.maximum, max(self.minimum, age * self.fraction))


class OperationReader(Protocol):
    """The part of HealthcareClient the helpers below need (keeps them testable)."""

    def get_operation(self, name: str) -> Awaitable[Operation]: ...

    def list_operations(
        self,
        dataset: DatasetPath,
        filter: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Awaitable[OperationsPage]: ...


async def wait_for_operation(
    client: OperationReader,
    name: str,
    *,
    schedule: PollSchedule = PollSchedule(minimum=0.2, maximum=10.0),
    max_wait: float | None = None,
    on_poll: Callable[[Operation], None] | None = None,
) -> Operation:
    """Poll one operation until it is done and return it (demo, preflight, tests).

    The executor polls many operations through ``operations.list`` instead; this is for the
    few callers that wait on one. Raises ApiError (retriable) when ``max_wait`` seconds pass first.
    """
    started = time.monotonic()
    while True:
        op = await client.get_operation(name)
        if on_poll is not None:
            on_poll(op)
        if op.done:
            return op
        age = time.monotonic() - started
        if max_wait is not None and age >= max_wait:
            raise ApiError(
                f"operation {name} still running after {max_wait:.0f} s; check it with"
                " `bulkmover status` or in the console, it keeps running on the server",
                retriable=True,
            )
        delay = schedule.delay(age)
        if max_wait is not None:
            delay = min(delay, max(0.0, max_wait - age))
        await asyncio.sleep(delay)


async def iter_operations(
    client: OperationReader,
    dataset: DatasetPath,
    filter: str | None = None,
    page_size: int = 100,
) -> list[Operation]:
    """Every operation of ``dataset`` matching ``filter``, following page tokens to the end."""
    found: list[Operation] = []
    async for page in iter_pages(
        lambda token: client.list_operations(dataset, filter, page_size, token)
    ):
        found.extend(page.operations)
    return found


async def operations_started_since(
    client: OperationReader,
    dataset: DatasetPath,
    since: datetime,
    *,
    api_method: str | None = IMPORT_METHOD,
    known: Iterable[str] = (),
    skew: timedelta = timedelta(seconds=30),
    filter: str | None = None,
    page_size: int = 1000,
) -> list[Operation]:
    """Operations created at or after ``since - skew`` (naive means UTC) not in ``known``.

    Resolves an ``OutcomeUnknownError`` from an import/export start: the POST may or may not have
    created an operation. The API does not echo the request (no source URI in the metadata), so
    this can only narrow candidates down: exactly one unknown candidate after one ambiguous start
    is almost surely it; zero means resubmit (re-importing is safe: existing instances are
    skipped); several means the caller cannot tell and should resubmit too. Matching on
    ``apiMethodName`` ignores the v1/v1beta1 difference in the method's package. It reads every
    operation of the dataset (one call per ``page_size``): after several ambiguous starts, resolve
    them together with one call and ``since`` = the earliest ``sent_at``.
    """
    known_names = set(known)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    cutoff = since - skew
    result = []
    for op in await iter_operations(client, dataset, filter, page_size):
        if op.name in known_names:
            continue
        if api_method and not same_method(op.metadata.api_method_name, api_method):
            continue
        created = op.metadata.create_time
        if created is not None and created < cutoff:
            continue
        result.append(op)
    return result
