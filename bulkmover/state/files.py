"""Every file's outcome: the per-file half of the state file (schema 4).

A ledger row ends ``imported``, ``failed`` (with the API's code and message), ``unknown`` (with
why) or stays ``pending``. Outcomes only move forward from ``pending``/``unknown``, but for two
ways: a shard's own error log overrules a probe's ``imported`` while the shard is collecting,
and a file-level retry makes a failed file ``pending`` again inside the transaction that creates
the shard retrying it.

A shard whose operation ended gets its files *settled* (``shards.files``):

    NULL --operation ended--> collecting --its failures all logged--> settled
      |                        ^  |                                     ^
      +--drift--> checking ----+  +--log capped--> narrowing --children settled--+

A shard with no failure, or one that failed as a whole, settles in the same transaction that
records its end (``RunLedger.mark_finished`` calls ``on_shard_finished``). Child shards
(``purpose`` resolve or retry) import some files of a planned shard again; ``members`` names
their files by the planned shard's ledger rows, so an outcome always lands on the one row of the
file, whichever shard found it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from bulkmover.state.store import ShardState, now
from bulkmover.state.transaction import transaction

UNKNOWN_CODE = 2  # google.rpc.Code.UNKNOWN: what an ``unknown`` file reports when no code is kept


class FileOutcome(StrEnum):
    PENDING = "pending"
    IMPORTED = "imported"
    FAILED = "failed"
    UNKNOWN = "unknown"


class FilesState(StrEnum):
    """Where a shard's files are, once its operation ended."""

    CHECKING = "checking"  # its counts differ from the plan: which files changed in the bucket
    COLLECTING = "collecting"  # reading its failures from Cloud Logging
    NARROWING = "narrowing"  # the log did not name every failure: finding the rest
    SETTLED = "settled"  # every file has its outcome


class Purpose(StrEnum):
    PLAN = "plan"
    RESOLVE = "resolve"  # imports again the files a capped error log left unexplained
    RETRY = "retry"  # imports again files that failed (``run --retry-failed``)
    REPLAN = "replan"  # imports files added or replaced under a kept shard (``plan --replan``)


@dataclass(frozen=True, slots=True)
class FileRef:
    """One ledger row: ``home_id`` is its planned shard, ``name`` the full object name."""

    home_id: int
    directory_id: int
    file: str  # the name's last part, as the row keeps it
    name: str
    size: int
    generation: int
    outcome: FileOutcome

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.home_id, self.directory_id, self.file)


@dataclass(frozen=True, slots=True)
class FileError:
    """Why one file failed: the API's google.rpc code and message."""

    name: str  # full object name
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class SettlingShard:
    """A shard whose operation ended and whose files are not all settled yet."""

    shard_id: int
    uri: str
    operation: str | None
    parent_id: int | None
    purpose: Purpose
    files: FilesState
    expected: int
    success: int
    failure: int
    logged: int
    submitted_at: float | None
    ended_at: float
    log_first_read_at: float | None
    log_grew_at: float | None
    log_next_read_at: float

    @property
    def bucket(self) -> str:
        return self.uri[len("gs://") :].split("/", 1)[0]

    @property
    def operation_id(self) -> str | None:
        return self.operation.rsplit("/", 1)[-1] if self.operation else None


@dataclass(frozen=True, slots=True)
class OutcomeTotals:
    imported: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0

    @property
    def files(self) -> int:
        return self.imported + self.failed + self.unknown + self.pending

    def as_dict(self) -> dict[str, int]:
        return {
            "imported": self.imported,
            "failed": self.failed,
            "unknown": self.unknown,
            "pending": self.pending,
        }


_SETTLING_COLUMNS = (
    "id, uri, operation, parent_id, purpose, files, objects, success, failure, logged,"
    " submitted_at, ended_at, log_first_read_at, log_grew_at, log_next_read_at"
)
# The ledger rows of a shard: its own rows for a planned shard, its members' for a child.
_FILE_ROWS = (
    "SELECT o.shard_id, o.directory_id, o.name, d.path || o.name, o.size, o.generation, o.outcome"
    " FROM objects AS o JOIN directories AS d ON d.id = o.directory_id"
)
# The ledger rows of a child shard (a planned shard's are its own ``objects`` rows).
_CHILD_KEYS = (
    "({t}shard_id, {t}directory_id, {t}name) IN"
    " (SELECT home_id, directory_id, name FROM members WHERE shard_id = :shard)"
)


class FileLedger:
    """Per-file outcomes and child shards on an open state file (one writer: ``run``)."""

    def __init__(
        self, conn: sqlite3.Connection, event: Callable[[int | None, str, str], None]
    ) -> None:
        self.conn = conn
        self._event = event  # the run's event log (RunLedger's), inside the open transaction

    # -- settling, called inside RunLedger.mark_finished's transaction -------------------------

    def on_shard_finished(
        self,
        shard_id: int,
        state: ShardState,
        failure: int,
        error: tuple[int, str] | None = None,
        drift: bool = False,
    ) -> None:
        """A shard's operation ended (or it failed without one): settle what can be settled.

        No failure: every file of it is in the store (imported now or already there). Failures:
        its files wait for the error log. Counts unlike the plan (drift): first find which files
        changed in the bucket. Failed as a whole: its files fail with that error.
        """
        if state == ShardState.DONE and drift:
            self._files_state(shard_id, FilesState.CHECKING)
        elif state == ShardState.DONE and failure == 0:
            self._set_pending(shard_id, FileOutcome.IMPORTED)
            self._files_state(shard_id, FilesState.SETTLED)
        elif state == ShardState.DONE:
            self.conn.execute(
                "UPDATE shards SET files=?, logged=0, log_first_read_at=NULL, log_grew_at=NULL,"
                " log_next_read_at=0 WHERE id=?",
                (FilesState.COLLECTING.value, shard_id),
            )
        elif state == ShardState.FAILED:
            code, message = error or (UNKNOWN_CODE, "the shard's operation failed")
            self._set_pending(shard_id, FileOutcome.FAILED, code, message)
            self._files_state(shard_id, FilesState.SETTLED)

    def reopen(self, shard_id: int) -> None:
        """A failed shard queued again whole: its failed files are ``pending`` once more."""
        self.conn.execute(
            "UPDATE objects SET outcome='pending', error_code=NULL, error_message=NULL"
            " WHERE outcome IN ('failed', 'unknown') AND " + self._keys(shard_id),
            {"shard": shard_id},
        )

    # -- the stage's transitions (each one committed) -----------------------------------------

    def record_failures(self, shard_id: int, failures: Iterable[FileError], at: float) -> int:
        """Logged failures of one shard's operation; returns how many of its files have failed
        now (the shard's ``logged``). Entries naming no file of the shard are ignored.

        The operation's own log wins over a probe that found the file's instance in the store
        (a damaged copy of an instance stored from another file): only a shard still collecting
        is read, so no later import of the file can be undone by it."""
        with transaction(self.conn):
            before = self._logged(shard_id)
            for failure in failures:
                cut = failure.name.rfind("/") + 1
                self.conn.execute(
                    "UPDATE objects SET outcome='failed', error_code=:code, error_message=:message"
                    " WHERE outcome != 'failed' AND name=:file AND directory_id IN"
                    " (SELECT id FROM directories WHERE path=:path) AND " + self._keys(shard_id),
                    {
                        "code": failure.code,
                        "message": failure.message,
                        "file": failure.name[cut:],
                        "path": failure.name[:cut],
                        "shard": shard_id,
                    },
                )
            logged = self._logged(shard_id)
            first = "coalesce(log_first_read_at, :at)"
            self.conn.execute(
                f"UPDATE shards SET logged=:logged, log_first_read_at={first},"
                " log_grew_at=CASE WHEN :grew THEN :at ELSE log_grew_at END WHERE id=:shard",
                {"logged": logged, "at": at, "grew": logged > before, "shard": shard_id},
            )
        return logged

    def schedule_read(self, shard_id: int, at: float) -> None:
        with transaction(self.conn):
            self.conn.execute("UPDATE shards SET log_next_read_at=? WHERE id=?", (at, shard_id))

    def settle(self, shard_id: int, rest: FileOutcome, reason: str | None = None) -> None:
        """Every still-pending file of the shard gets ``rest`` (``imported`` when the log named
        every failure; ``unknown`` with ``reason`` when the failures cannot be found)."""
        with transaction(self.conn):
            code = UNKNOWN_CODE if rest == FileOutcome.UNKNOWN else None
            self._set_pending(shard_id, rest, code, reason)
            self._files_state(shard_id, FilesState.SETTLED)
            self._event(shard_id, "settled", reason or f"the rest {rest.value}")

    def checked(self, shard_id: int, failure: int, uncounted: int = 0) -> None:
        """Its changed files are flagged: on to the error log (or settled, with no failure).

        ``uncounted``: the operation counted that many files fewer than planned while nothing
        changed in the bucket. They were in the store already: whether the API counts such a
        skipped duplicate as a success is not documented, so a count short by them is no drift.
        """
        with transaction(self.conn):
            if uncounted:
                self.conn.execute("UPDATE shards SET drift=0, error=NULL WHERE id=?", (shard_id,))
                self._event(
                    shard_id,
                    "uncounted",
                    f"{uncounted} file(s) not counted by the operation and unchanged in the"
                    " bucket: in the store already (skipped duplicates)",
                )
            if failure:
                self.conn.execute(
                    "UPDATE shards SET files=?, logged=0, log_first_read_at=NULL,"
                    " log_grew_at=NULL, log_next_read_at=0 WHERE id=?",
                    (FilesState.COLLECTING.value, shard_id),
                )
            else:
                self._set_pending(shard_id, FileOutcome.IMPORTED)
                self._files_state(shard_id, FilesState.SETTLED)

    def start_narrowing(self, shard_id: int, reason: str) -> None:
        with transaction(self.conn):
            self._files_state(shard_id, FilesState.NARROWING)
            self._event(shard_id, "narrowing", reason)

    def mark_files(
        self, refs: Iterable[FileRef], outcome: FileOutcome, error: tuple[int, str] | None = None
    ) -> None:
        """Outcomes found outside the error log (a header probe, STOW-RS), in one commit."""
        code, message = error if error is not None else (None, None)
        rows = [(outcome.value, code, message, *ref.key) for ref in refs]
        with transaction(self.conn):
            self.conn.executemany(
                "UPDATE objects SET outcome=?, error_code=?, error_message=? WHERE shard_id=?"
                " AND directory_id=? AND name=? AND outcome IN ('pending', 'unknown')",
                rows,
            )

    def flag_changed(self, refs: Iterable[FileRef], generations: Iterable[int | None]) -> None:
        """Files whose object was replaced (new generation) or deleted since planning."""
        with transaction(self.conn):
            for ref, generation in zip(refs, generations, strict=True):
                self.conn.execute(
                    "UPDATE objects SET changed=1, generation=coalesce(?, generation) WHERE"
                    " shard_id=? AND directory_id=? AND name=?",
                    (generation, *ref.key),
                )

    def add_child(
        self, parent_id: int, purpose: Purpose, uri: str, prefix: str, refs: list[FileRef]
    ) -> int:
        """A new pending child shard importing ``refs`` (files of ``parent_id``'s ledger)."""
        with transaction(self.conn):
            return self._add_child(parent_id, purpose, uri, prefix, refs)

    def add_children(
        self, parent_id: int, purpose: Purpose, children: Iterable[tuple[str, str, list[FileRef]]]
    ) -> list[int]:
        """Several children of one shard in one commit: ``(uri, prefix, refs)`` each."""
        with transaction(self.conn):
            return [self._add_child(parent_id, purpose, *child) for child in children]

    def _add_child(
        self, parent_id: int, purpose: Purpose, uri: str, prefix: str, refs: list[FileRef]
    ) -> int:
        top = self.conn.execute("SELECT coalesce(max(id), 0) FROM shards").fetchone()[0]
        child_id = int(top) + 1
        self.conn.execute(
            "INSERT INTO shards (id, plan_id, uri, prefix, objects, bytes, state, updated_at,"
            " parent_id, purpose) SELECT ?, plan_id, ?, ?, ?, ?, 'pending', ?, ?, ? FROM shards"
            " WHERE id = ?",
            (
                child_id,
                uri,
                prefix,
                len(refs),
                sum(r.size for r in refs),
                now(),
                parent_id,
                purpose.value,
                parent_id,
            ),
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO members (shard_id, home_id, directory_id, name)"
            " VALUES (?, ?, ?, ?)",
            [(child_id, *ref.key) for ref in refs],
        )
        if purpose == Purpose.RETRY:
            self.conn.executemany(
                "UPDATE objects SET outcome='pending', error_code=NULL, error_message=NULL"
                " WHERE shard_id=? AND directory_id=? AND name=?",
                [ref.key for ref in refs],
            )
        self._event(child_id, purpose.value, f"{len(refs)} file(s) of shard {parent_id}: {uri}")
        return child_id

    # -- queries -----------------------------------------------------------------------------

    def settling(self, *states: FilesState) -> list[SettlingShard]:
        """Shards whose files are being settled (``collecting``/``narrowing``), by id."""
        wanted = states or (FilesState.CHECKING, FilesState.COLLECTING, FilesState.NARROWING)
        marks = ",".join("?" * len(wanted))
        rows = self.conn.execute(
            f"SELECT {_SETTLING_COLUMNS} FROM shards WHERE files IN ({marks}) ORDER BY id",
            [s.value for s in wanted],
        )
        return [
            SettlingShard(
                r[0],
                r[1],
                r[2],
                r[3],
                Purpose(r[4]),
                FilesState(r[5]),
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
                r[11] or 0.0,
                r[12],
                r[13],
                r[14],
            )  # fmt: skip
            for r in rows
        ]

    def failed_count(self, shard_id: int) -> int:
        """How many of the shard's files are known failed (logged, or found otherwise)."""
        return self._logged(shard_id)

    def settling_count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM shards WHERE files IN ('checking', 'collecting', 'narrowing')"
        ).fetchone()
        return int(row[0])

    def busy(self) -> bool:
        """Some shard's files are still being settled."""
        row = self.conn.execute(
            "SELECT 1 FROM shards WHERE files IN ('checking', 'collecting', 'narrowing') LIMIT 1"
        ).fetchone()
        return row is not None

    def members(self, shard_id: int, *outcomes: FileOutcome) -> list[FileRef]:
        """The shard's files (optionally only those with ``outcomes``), in name order."""
        query = _FILE_ROWS + " WHERE " + self._keys(shard_id, "o") + " ORDER BY 4"
        rows = self.conn.execute(query, {"shard": shard_id}).fetchall()
        refs = [FileRef(r[0], r[1], r[2], r[3], r[4], r[5], FileOutcome(r[6])) for r in rows]
        return [ref for ref in refs if ref.outcome in outcomes] if outcomes else refs

    def children(self, shard_id: int) -> list[tuple[int, ShardState, FilesState | None]]:
        rows = self.conn.execute(
            "SELECT id, state, files FROM shards WHERE parent_id=? ORDER BY id", (shard_id,)
        )
        return [(r[0], ShardState(r[1]), FilesState(r[2]) if r[2] else None) for r in rows]

    def failed_files(self, code: int | None = None) -> list[FileRef]:
        """Every failed file (optionally only those with error ``code``), by planned shard."""
        query = _FILE_ROWS + " WHERE o.outcome = 'failed'"
        params: tuple[int, ...] = ()
        if code is not None:
            query += " AND o.error_code = ?"
            params = (code,)
        rows = self.conn.execute(query + " ORDER BY o.shard_id, 4", params)
        return [FileRef(r[0], r[1], r[2], r[3], r[4], r[5], FileOutcome(r[6])) for r in rows]

    def failures(self, limit: int | None = None) -> list[FileError]:
        """Failed files with the API's reason, in name order (at most ``limit``)."""
        query = (
            "SELECT d.path || o.name, o.error_code, o.error_message FROM objects AS o"
            " JOIN directories AS d ON d.id = o.directory_id WHERE o.outcome = 'failed'"
            " ORDER BY 1"
        )
        rows = self.conn.execute(query + (f" LIMIT {int(limit)}" if limit is not None else ""))
        return [
            FileError(name, int(code or UNKNOWN_CODE), message or "")
            for name, code, message in rows
        ]

    def error_codes(self) -> set[int]:
        rows = self.conn.execute(
            "SELECT DISTINCT error_code FROM objects WHERE outcome='failed'"
            " AND error_code IS NOT NULL"
        )
        return {int(r[0]) for r in rows}

    def totals(self) -> OutcomeTotals:
        counts = dict(
            self.conn.execute("SELECT outcome, count(*) FROM objects GROUP BY outcome").fetchall()
        )
        return OutcomeTotals(
            imported=int(counts.get("imported", 0)),
            failed=int(counts.get("failed", 0)),
            unknown=int(counts.get("unknown", 0)),
            pending=int(counts.get("pending", 0)),
        )

    # -- internals ---------------------------------------------------------------------------

    def _logged(self, shard_id: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM objects WHERE outcome='failed' AND " + self._keys(shard_id),
            {"shard": shard_id},
        ).fetchone()
        return int(row[0])

    def _set_pending(
        self,
        shard_id: int,
        outcome: FileOutcome,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE objects SET outcome=:outcome, error_code=:code, error_message=:message"
            " WHERE outcome IN ('pending', 'unknown') AND " + self._keys(shard_id),
            {"outcome": outcome.value, "code": code, "message": message, "shard": shard_id},
        )

    def _keys(self, shard_id: int, table: str = "") -> str:
        """SQL condition on ``objects`` (parameter ``:shard``): the rows of the shard."""
        row = self.conn.execute("SELECT parent_id FROM shards WHERE id=?", (shard_id,)).fetchone()
        t = f"{table}." if table else ""
        return f"{t}shard_id = :shard" if row is None or row[0] is None else _CHILD_KEYS.format(t=t)

    def _files_state(self, shard_id: int, state: FilesState) -> None:
        self.conn.execute("UPDATE shards SET files=? WHERE id=?", (state.value, shard_id))
        if state == FilesState.SETTLED:
            self._count_outcomes(shard_id)

    def _count_outcomes(self, shard_id: int) -> None:
        """A settled planned shard counts its files' outcomes, not its operation's counters
        (kept in ``operations``): the API may not count a file it skipped as stored already,
        an operation retried after a partial import counts only the rest, and files imported
        again by child shards end on its rows. A child that settles recounts the settled
        planned shards it imported files of."""
        homes = self.conn.execute(
            "SELECT id FROM shards WHERE id=? AND parent_id IS NULL UNION"
            " SELECT s.id FROM shards AS s JOIN members AS m ON m.home_id = s.id"
            " WHERE m.shard_id=? AND s.files=?",
            (shard_id, shard_id, FilesState.SETTLED.value),
        ).fetchall()
        for (home,) in homes:
            self.conn.execute(
                "UPDATE shards SET"
                " success=(SELECT count(*) FROM objects WHERE shard_id=:h AND outcome='imported'),"
                " failure=(SELECT count(*) FROM objects WHERE shard_id=:h"
                " AND outcome IN ('failed', 'unknown'))"
                # A shard planned without a ledger (no file rows) keeps its counters.
                " WHERE id=:h AND EXISTS (SELECT 1 FROM objects WHERE shard_id=:h)",
                {"h": home},
            )
