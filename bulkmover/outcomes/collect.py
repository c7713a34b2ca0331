"""Read the per-file errors of many import operations from Cloud Logging in one query.

Logging reads are scarce (about 60 ``entries:list`` a minute per project) and costly when
unbounded in time, so one filter covers up to ``MAX_OPERATIONS_PER_READ`` operations
(``operation.id=("a" OR "b" ...)``) and a time window from the earliest operation's start to
the latest one's end, widened by a margin for clock skew. Nothing else goes in the filter: the
resource labels' spelling and the logName are undocumented, and a filter spelling them otherwise
than the real API would match nothing (the run would then narrow every shard: correct, slow and
costly). The payload type and the store are checked on the entries that come back instead.

>>> f = errors_filter(StorePath("p", "l", "d", "s"), ["1", "2"], None)
>>> 'operation.id=("1" OR "2")' in f
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkmover.healthcare.logging import LogReader, iter_log_entries
from bulkmover.healthcare.resources import StorePath
from bulkmover.state.files import FileError

MAX_OPERATIONS_PER_READ = 100  # keeps a filter well under Logging's 20,000 characters
WINDOW_MARGIN = 600.0  # seconds either side of the operations' span (clock skew, late stamps)


@dataclass(frozen=True)
class TimeWindow:
    since: float  # epoch seconds
    until: float

    @staticmethod
    def _stamp(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def terms(self) -> list[str]:
        return [
            f'timestamp>="{self._stamp(self.since)}"',
            f'timestamp<="{self._stamp(self.until)}"',
        ]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def errors_filter(store: StorePath, operation_ids: Sequence[str], window: TimeWindow | None) -> str:
    """The Logging filter for the import error entries of ``operation_ids`` on ``store``: the
    ids (unique) and the time window only; ``store`` is checked on the entries."""
    del store  # checked client side (LogEntry.is_error_of): its labels' spelling is unknown
    ids = " OR ".join(_quote(op) for op in operation_ids)
    terms = [f"operation.id=({ids})"]
    if window is not None:
        terms += window.terms()
    return " AND ".join(terms)


async def read_import_errors(
    client: LogReader,
    store: StorePath,
    bucket_of: dict[str, str],
    window: TimeWindow | None,
) -> dict[str, list[FileError]]:
    """Logged failures per operation id (``bucket_of`` maps each id to its source bucket).

    An entry whose source is in another bucket, or names no file, is not a file of the
    operation's shard and is left out; so is one that is not an import error entry of
    ``store`` (payload type, resource type and store labels, when present, checked here).
    """
    found: dict[str, list[FileError]] = {op: [] for op in bucket_of}
    entries = iter_log_entries(
        client,
        [f"projects/{store.project}"],
        errors_filter(store, list(bucket_of), window),
    )
    async for entry in entries:
        op = entry.operation_id
        source, error = entry.source, entry.error
        if op not in found or source is None or error is None:
            continue
        if not entry.is_error_of(store, "import"):
            continue
        prefix = f"gs://{bucket_of[op]}/"
        if source.startswith(prefix):
            found[op].append(FileError(source[len(prefix) :], error.code, error.message))
    return found
