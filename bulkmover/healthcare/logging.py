"""Cloud Logging v2 ``entries:list``: the per-file errors of import and export operations.

An import that cannot read a file counts it in ``counter.failure`` and writes one ERROR entry
naming the file (``jsonPayload.source``) and the reason (``jsonPayload.error``). The log is not a
complete list (above a threshold only some errors are logged), so a reader of these entries must
treat them as "known failures", never as "all failures".

What identifies these entries for certain is the operation id (unique, a documented LogEntry
field); the payload type and the resource type are shown in Google's example entry, but the
resource labels' spelling and the logName are documented nowhere. A filter naming an undocumented
spelling that the real API spells otherwise would match nothing, silently, so filters here name
only the operation id (and a time window); the payload type and the store are checked on the
entries that come back (``LogEntry.is_error_of``), accepting the label spellings seen or none.

>>> operation_errors_filter("123")
'operation.id="123"'
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
LABEL_SPELLINGS = {
    "project": ("project_id", "projectId"),
    "location": ("location",),
    "dataset": ("dataset_id", "datasetId"),
    "store": ("dicom_store_id", "dicomStoreId"),
}


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

    def is_error_of(self, store: StorePath, kind: Literal["import", "export"] = "import") -> bool:
        """Is this an ``kind`` error entry of ``store``, as far as the entry tells? The payload
        type must be ``kind``'s; a store label present under a known spelling must name
        ``store`` (labels spelled otherwise, or absent, are no evidence either way)."""
        if self.payload_type != (IMPORT_LOG_TYPE if kind == "import" else EXPORT_LOG_TYPE):
            return False
        if self.resource.type and self.resource.type != STORE_RESOURCE_TYPE:
            return False
        wanted = {
            "project": store.project,
            "location": store.location,
            "dataset": store.dataset_id,
            "store": store.store,
        }
        labels = self.resource.labels
        for part, spellings in LABEL_SPELLINGS.items():
            for key in spellings:
                if key in labels and labels[key] != wanted[part]:
                    return False
        return True

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
    """A Logging filter for one operation's per-file error entries: its id, nothing else.

    The id is unique; the rest (payload type ``kind``, ``store``) is checked on the entries
    (``LogEntry.is_error_of``), because the labels' spelling and the logName are undocumented.
    ``kind`` and ``store`` stay in the signature for callers that pass them.
    """
    del kind, store  # checked client side
    return f"operation.id={_quote(operation_id)}"


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


async def operation_errors(
    client: LogReader,
    store: StorePath,
    operation_id: str,
    *,
    kind: Literal["import", "export"] = "import",
    page_size: int = MAX_PAGE_SIZE,
) -> AsyncIterator[LogEntry]:
    """The logged per-file errors of one operation on ``store`` (possibly not all of them)."""
    entries = iter_log_entries(
        client,
        [f"projects/{store.project}"],
        operation_errors_filter(operation_id),
        page_size=page_size,
    )
    async for entry in entries:
        if entry.operation_id == operation_id and entry.is_error_of(store, kind):
            yield entry
