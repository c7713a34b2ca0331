"""Cloud Logging v2 ``entries:list``: the per-file errors of import and export operations.

An import that cannot read a file counts it in ``counter.failure`` and writes one ERROR entry
naming the file (``jsonPayload.source``) and the reason (``jsonPayload.error``). The log is not a
complete list (above a threshold only some errors are logged), so a reader of these entries must
treat them as "known failures", never as "all failures".

>>> operation_errors_filter("123").split(" AND ")[:2]
['resource.type="healthcare_dicom_store"', 'operation.id="123"']
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from bulkmover.healthcare.operations import RpcStatus
from bulkmover.healthcare.paging import iter_pages
from bulkmover.healthcare.resources import StorePath

IMPORT_LOG_TYPE = "type.googleapis.com/google.cloud.healthcare.logging.ImportDicomLogEntry"
EXPORT_LOG_TYPE = "type.googleapis.com/google.cloud.healthcare.logging.ExportDicomLogEntry"
STORE_RESOURCE_TYPE = "healthcare_dicom_store"
MAX_PAGE_SIZE = 1000


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class MonitoredResource(_Wire):
    type: str = ""
    labels: dict[str, str] = {}


class LogOperation(_Wire):
    id: str = ""
    producer: str = ""


class LogEntry(_Wire):
    """One Logging entry; the properties read the Healthcare import/export payload."""

    log_name: str = ""
    resource: MonitoredResource = MonitoredResource()
    operation: LogOperation | None = None
    severity: str = "DEFAULT"
    timestamp: datetime | None = None
    insert_id: str | None = None
    json_payload: dict[str, Any] = {}

    @property
    def payload_type(self) -> str | None:
        value = self.json_payload.get("@type")
        return str(value) if value else None

    @property
    def operation_id(self) -> str | None:
        return self.operation.id if self.operation and self.operation.id else None

    @property
    def source(self) -> str | None:
        """The gs:// file an import failed to read."""
        value = self.json_payload.get("source")
        return str(value) if value else None

    @property
    def resource_name(self) -> str | None:
        """The instance path an export failed to write."""
        value = self.json_payload.get("resourceName")
        return str(value) if value else None

    @property
    def error(self) -> RpcStatus | None:
        value = self.json_payload.get("error")
        return RpcStatus.model_validate(value) if isinstance(value, dict) else None

    @property
    def error_code(self) -> int | None:
        error = self.error
        return error.code if error else None

    @property
    def error_message(self) -> str | None:
        error = self.error
        return error.message if error else None


class LogEntriesPage(NamedTuple):
    """One page of ``entries:list``; pages may be empty, only a missing token ends the list."""

    entries: list[LogEntry]
    next_page_token: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LogEntriesPage:
        entries = [LogEntry.model_validate(item) for item in body.get("entries") or []]
        return cls(entries, body.get("nextPageToken") or None)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def operation_errors_filter(
    operation_id: str,
    *,
    kind: Literal["import", "export"] = "import",
    store: StorePath | None = None,
) -> str:
    """A Logging filter for one operation's per-file error entries.

    The exact logName is not documented, so the filter keys on the resource type, the operation
    id and the payload type, which are.
    """
    payload = IMPORT_LOG_TYPE if kind == "import" else EXPORT_LOG_TYPE
    terms = [f"resource.type={_quote(STORE_RESOURCE_TYPE)}"]
    if store is not None:
        terms.append(f"resource.labels.dataset_id={_quote(store.dataset_id)}")
        terms.append(f"resource.labels.dicom_store_id={_quote(store.store)}")
    terms.append(f"operation.id={_quote(operation_id)}")
    terms.append(f"jsonPayload.@type={_quote(payload)}")
    return " AND ".join(terms)


class LogReader(Protocol):
    def list_log_entries(
        self,
        resource_names: Sequence[str],
        filter: str,
        page_size: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
        order_by: str | None = None,
    ) -> Awaitable[LogEntriesPage]: ...


async def iter_log_entries(
    client: LogReader,
    resource_names: Sequence[str],
    filter: str,
    *,
    page_size: int = MAX_PAGE_SIZE,
    order_by: str | None = None,
) -> AsyncIterator[LogEntry]:
    """Every entry matching ``filter``, one ``entries:list`` call per page."""
    pages = iter_pages(
        lambda token: client.list_log_entries(resource_names, filter, page_size, token, order_by)
    )
    async for page in pages:
        for entry in page.entries:
            yield entry


def operation_errors(
    client: LogReader,
    store: StorePath,
    operation_id: str,
    *,
    kind: Literal["import", "export"] = "import",
    page_size: int = MAX_PAGE_SIZE,
) -> AsyncIterator[LogEntry]:
    """The logged per-file errors of one operation on ``store`` (possibly not all of them)."""
    return iter_log_entries(
        client,
        [f"projects/{store.project}"],
        operation_errors_filter(operation_id, kind=kind, store=store),
        page_size=page_size,
    )
