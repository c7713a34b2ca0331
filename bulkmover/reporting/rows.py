"""The report's rows: every planned file with its outcome, streamed from the state file.

A report reads one consistent snapshot (``Ledger`` holds a read transaction), so its totals
always add up to its files even while ``run`` keeps writing. Rows come off a SQLite cursor one
at a time in (shard, full name) order: the ledger's key already orders by shard, so SQLite only
sorts one shard's files at a time and memory stays flat at any ledger size.

How a stored row becomes a report row is written once, as one SQL expression per column, which
the typed rows (table) and the lines SQLite renders itself (json, jsonl, csv: a million Python
objects would cost seconds) all use, so every format agrees: ``failed`` and ``unknown`` files
carry an error (the stored code, else ``UNKNOWN_CODE``; the stored message or reason, else ""),
``imported`` and ``pending`` files none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple

from bulkmover.errors import StateError
from bulkmover.state.files import UNKNOWN_CODE, FileOutcome, OutcomeTotals
from bulkmover.state.store import StateStore

OUTCOMES_SCHEMA = 4
"""The schema that added per-file outcomes (migration 4): older files have nothing to report."""

CACHE_KIB = 16 * 1024
"""SQLite's page cache for a report, which also bounds its in-memory sort of one shard. The
default (2 MiB) spills a 5,000-file shard's sort to a temporary file and misses on the
directories of a million-file ledger: 3-4x slower. 16 MiB is a fixed bound at any ledger size."""


class FileError(NamedTuple):
    code: int
    message: str


class FileRow(NamedTuple):
    """One planned file as the report shows it. A tuple, not a dataclass: a million of them are
    built one after another, and ``_make`` costs a fraction of a dataclass ``__init__``."""

    uri: str
    size: int
    shard: int
    """The planned shard (child shards that imported the file again are not shown)."""
    outcome: str
    """A ``FileOutcome`` value."""
    error_code: int | None
    """None exactly when the file has no error (imported, pending)."""
    error_message: str | None
    changed: int
    """1 when the file's generation changed since planning."""

    @property
    def error(self) -> FileError | None:
        if self.error_code is None:
            return None
        return FileError(self.error_code, self.error_message or "")

    def as_json(self) -> dict[str, Any]:
        """The documented JSON object (json, jsonl); ``changed`` is only in csv and the table."""
        error = self.error
        return {
            "uri": self.uri,
            "size": self.size,
            "shard": self.shard,
            "outcome": self.outcome,
            "error": None if error is None else {"code": error.code, "message": error.message},
        }


@dataclass(frozen=True, slots=True)
class Reason:
    """One distinct error (outcome, code, message) and how many files share it."""

    outcome: str
    code: int
    message: str
    files: int


@dataclass(frozen=True, slots=True)
class Widths:
    """Longest cell per column of the selected files, so a table can be laid out before its
    rows are read (and never cut a URI)."""

    rows: int
    uri: int
    size: int
    shard: int
    code: int


# How a ledger row becomes a report row, one SQL expression per column, shared by every query
# below. The bucket comes from the planned shard's URI (gs://BUCKET/...), the directory part of
# the name from ``directories``.
_ERRORED = "o.outcome IN ('failed', 'unknown')"
_URI = "substr(s.uri, 1, 5 + instr(substr(s.uri, 6), '/')) || d.path || o.name"
_ERROR_CODE = f"CASE WHEN {_ERRORED} THEN coalesce(o.error_code, {UNKNOWN_CODE}) END"
_ERROR_MESSAGE = f"CASE WHEN {_ERRORED} THEN coalesce(o.error_message, '') END"
_COLUMNS = f"{_URI}, o.size, o.shard_id, o.outcome, {_ERROR_CODE}, {_ERROR_MESSAGE}, o.changed"
_FROM = (
    " FROM objects AS o JOIN shards AS s ON s.id = o.shard_id"
    " JOIN directories AS d ON d.id = o.directory_id"
)
# By shard, then full name. The ledger's key starts with the shard, so SQLite sorts one shard's
# rows at a time ("USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"), never the whole ledger.
_ORDER = " ORDER BY o.shard_id, d.path || o.name"

# The documented JSON object of a file, rendered by SQLite (no dict per file).
_JSON = f"""json_object('uri', {_URI}, 'size', o.size, 'shard', o.shard_id, 'outcome', o.outcome,
    'error', iif({_ERRORED}, json_object('code', {_ERROR_CODE}, 'message', {_ERROR_MESSAGE}),
                 NULL))"""

# A CSV line of a file (``CSV_COLUMNS``), rendered by SQLite: the csv module costs ~4 us a row,
# 4 s more for a million files. Cells are quoted as the csv module quotes them (QUOTE_MINIMAL:
# a comma, a quote or a line break; quotes doubled). A URI is checked part by part: a bucket
# name holds none of these, and checking the columns spares building the URI twice.
_SPECIAL = ("','", "'\"'", "char(10)", "char(13)")


def _quoted(expr: str) -> str:
    return "'\"' || replace(" + expr + ", '\"', '\"\"') || '\"'"


def _needs_quotes(*exprs: str) -> str:
    return " OR ".join(f"instr({e}, {c})" for e in exprs for c in _SPECIAL)


_CSV = f"""iif({_needs_quotes("d.path", "o.name")}, {_quoted(_URI)}, {_URI})
    || ',' || o.size || ',' || o.shard_id || ',' || o.outcome || ','
    || iif({_ERRORED},
           {_ERROR_CODE} || ',' || iif({_needs_quotes(_ERROR_MESSAGE)},
                                       {_quoted(_ERROR_MESSAGE)}, {_ERROR_MESSAGE}),
           ',')
    || ',' || o.changed"""
CSV_COLUMNS = ("uri", "size", "shard", "outcome", "error_code", "error_message", "changed")


def _select(columns: str, failed_only: bool, *, ordered: bool = True) -> str:
    """The query of the selected files (every file, or only failed ones)."""
    where = " WHERE o.outcome = 'failed'" if failed_only else ""
    return f"SELECT {columns}{_FROM}{where}{_ORDER if ordered else ''}"


class Ledger:
    """The per-file ledger of an open (read-only) state file, as one read snapshot.

    ``with Ledger(store) as ledger:`` checks that the file can answer (a schema with per-file
    outcomes that this bulkmover knows, a plan) and holds a read transaction until the block ends.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.conn = store.conn

    def __enter__(self) -> Ledger:
        path = self.store.path
        version = self.store.schema_version
        if version < OUTCOMES_SCHEMA:
            raise StateError(
                f"state file {path} predates per-file outcomes (schema {version}, the report"
                f" needs {OUTCOMES_SCHEMA}); `bulkmover run CONFIG` upgrades it"
            )
        self.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # this connection only
        # One snapshot for everything below: a WAL reader sees the commits made before its
        # first read and none after, so totals and files cannot disagree during a run.
        self.conn.execute("BEGIN")
        try:
            if self.store.latest_plan() is None:
                raise StateError(
                    f"state file {path} holds no plan; run `bulkmover plan CONFIG` first"
                )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def source(self) -> str:
        plan = self.store.latest_plan()
        return plan.source if plan else ""

    def totals(self) -> OutcomeTotals:
        counts = dict(
            self.conn.execute("SELECT outcome, count(*) FROM objects GROUP BY outcome").fetchall()
        )
        strange = sorted(set(counts) - set(FileOutcome))
        if strange:
            raise StateError(
                f"state file {self.store.path} holds files with outcome {strange[0]!r}, which"
                " this bulkmover does not know; upgrade bulkmover"
            )
        return OutcomeTotals(**{str(k): int(v) for k, v in counts.items()})

    def unplanned(self) -> list[tuple[str, int, str]]:
        """``(uri, size, reason)`` of every matched file no shard imports (names that no
        import URI can single out, planned with ``import.unaddressable: skip``)."""
        source = self.source()
        bucket = source[: source.find("/", len("gs://")) + 1] if source.startswith("gs://") else ""
        return [(bucket + o.name, o.size, o.reason) for o in self.store.unplanned()]

    def reasons(self, *, failed_only: bool) -> Iterator[Reason]:
        """Distinct errors, most files first (then outcome, code, message)."""
        where = "o.outcome = 'failed'" if failed_only else _ERRORED
        query = f"""
            SELECT o.outcome, coalesce(o.error_code, {UNKNOWN_CODE}) AS code,
                   coalesce(o.error_message, '') AS message, count(*) AS files
            FROM objects AS o WHERE {where}
            GROUP BY 1, 2, 3 ORDER BY files DESC, 1, 2, 3
        """
        for outcome, code, message, files in self.conn.execute(query):
            yield Reason(outcome, code, message, files)

    def rows(self, *, failed_only: bool) -> Iterator[FileRow]:
        """Every selected file, in (shard, full name) order, one cursor step at a time."""
        return map(FileRow._make, self.conn.execute(_select(_COLUMNS, failed_only)))

    def json_rows(self, *, failed_only: bool) -> Iterator[str]:
        """The same files as ``rows``, each already the documented JSON object (``as_json``)."""
        cursor = self.conn.execute(_select(_JSON, failed_only))
        return (text if text.isascii() else _escape_line_breaks(text) for (text,) in cursor)

    def csv_rows(self, *, failed_only: bool) -> Iterator[str]:
        """The same files as ``rows``, each a CSV line (no line break) of ``CSV_COLUMNS``."""
        cursor = self.conn.execute(_select(_CSV, failed_only))
        return (text for (text,) in cursor)

    def widths(self, *, failed_only: bool) -> Widths:
        """Longest cells of the selected files (one pass over the ledger, no sort)."""
        columns = (
            f"count(*), coalesce(max(length({_URI})), 0), coalesce(max(length(o.size)), 0),"
            f" coalesce(max(length(o.shard_id)), 0), coalesce(max(length({_ERROR_CODE})), 0)"
        )
        row = self.conn.execute(_select(columns, failed_only, ordered=False)).fetchone()
        return Widths(*row)


def _escape_line_breaks(text: str) -> str:
    """SQLite leaves U+0085, U+2028 and U+2029 raw in JSON strings (valid JSON), but readers that
    split lines on them (Python's ``splitlines``) would cut a jsonl line in two. They can only
    sit inside strings, where the escape means the same. ``isascii`` spares almost every line
    this (it is a flag on the string, not a scan)."""
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def explain(conn: sqlite3.Connection, *, failed_only: bool) -> list[str]:
    """SQLite's plan for the file query (tests check it sorts one shard at a time)."""
    rows = conn.execute("EXPLAIN QUERY PLAN " + _select(_COLUMNS, failed_only)).fetchall()
    return [str(row[-1]) for row in rows]
