"""The executor's half of the state file: each shard's run state, its operations, and events.

Every transition is one short transaction, committed before anything depends on it, so any prefix
of the commits is a consistent state:

    pending --submit--> submitting --POST answered--> running --done--> done | failed
       ^                    |                            |
       +---- requeued ------+----------------------------+  (transient error, with not_before)

A shard found ``submitting`` on resume never got an operation name back: its import is sent
again (imports skip instances already stored, so this cannot duplicate data). A shard found
``running`` has its operation name committed: the executor re-attaches to that operation and never
submits the shard again while it may still be running.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

SCHEMA = """
CREATE TABLE IF NOT EXISTS shard_runs (
    shard_id     INTEGER PRIMARY KEY,
    uri          TEXT NOT NULL,
    expected     INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    operation    TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   REAL NOT NULL DEFAULT 0,
    submitted_at REAL,
    ended_at     REAL,
    success      INTEGER NOT NULL DEFAULT 0,
    failure      INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    drift        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS shard_runs_state ON shard_runs (state, not_before, shard_id);
CREATE TABLE IF NOT EXISTS operations (
    name        TEXT PRIMARY KEY,
    shard_id    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    done        INTEGER NOT NULL DEFAULT 0,
    success     INTEGER NOT NULL DEFAULT 0,
    failure     INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS operations_shard ON operations (shard_id);
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    shard_id  INTEGER,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
"""


class ShardState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


TERMINAL = (ShardState.DONE, ShardState.FAILED)


@dataclass(frozen=True)
class PlannedShard:
    """What the executor needs of a planned shard."""

    id: int
    uri: str
    objects: int
    bytes: int


@dataclass(frozen=True)
class ShardRun:
    shard_id: int
    uri: str
    expected: int
    bytes: int
    state: ShardState
    operation: str | None
    attempts: int
    not_before: float
    submitted_at: float | None
    ended_at: float | None
    success: int
    failure: int
    error: str | None
    drift: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ShardRun:
        return cls(
            shard_id=row["shard_id"],
            uri=row["uri"],
            expected=row["expected"],
            bytes=row["bytes"],
            state=ShardState(row["state"]),
            operation=row["operation"],
            attempts=row["attempts"],
            not_before=row["not_before"],
            submitted_at=row["submitted_at"],
            ended_at=row["ended_at"],
            success=row["success"],
            failure=row["failure"],
            error=row["error"],
            drift=bool(row["drift"]),
        )


@dataclass(frozen=True)
class RunTotals:
    shards: int
    done: int
    failed: int
    running: int
    pending: int
    success: int
    failure: int
    expected: int
    bytes_expected: int
    bytes_done: int


@dataclass(frozen=True)
class Event:
    at: float
    shard_id: int | None
    kind: str
    detail: str


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode; read-only connections never block the writer."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


class RunLedger:
    """Shard run states, operations and events in the state file (one writer: the executor)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._now = time.time

    # -- schema and plan ---------------------------------------------------------------------

    def ensure_schema(self) -> None:
        self.conn.executescript(SCHEMA)

    def sync_plan(self, shards: Iterable[PlannedShard]) -> int:
        """Add planned shards not yet known; drop pending ones no longer planned. Returns adds."""
        with self._tx():
            before = self.conn.total_changes
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS planned (id INTEGER PRIMARY KEY)")
            self.conn.execute("DELETE FROM planned")
            rows = ((s.id, s.uri, s.objects, s.bytes) for s in shards)
            self.conn.executemany(
                "INSERT OR IGNORE INTO shard_runs (shard_id, uri, expected, bytes) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            added = self.conn.total_changes - before
            return added

    def drop_unplanned(self, planned_ids: set[int]) -> int:
        """Forget pending shards that a replan removed (shards that ran are kept)."""
        stale = [
            r["shard_id"]
            for r in self.conn.execute("SELECT shard_id FROM shard_runs WHERE state='pending'")
            if r["shard_id"] not in planned_ids
        ]
        with self._tx():
            self.conn.executemany("DELETE FROM shard_runs WHERE shard_id=?", ((i,) for i in stale))
        return len(stale)

    # -- transitions (each one committed) ----------------------------------------------------

    def recover_interrupted(self) -> list[ShardRun]:
        """On start: shards left ``submitting`` go back to pending; return those ``running``."""
        with self._tx():
            n = self.conn.execute(
                "UPDATE shard_runs SET state='pending' WHERE state='submitting'"
            ).rowcount
            if n:
                self._event(None, "resume", f"{n} shard(s) had no operation name yet: resubmit")
        return self.shards_in(ShardState.RUNNING)

    def next_pending(self, now: float, limit: int = 64) -> list[ShardRun]:
        rows = self.conn.execute(
            "SELECT * FROM shard_runs WHERE state='pending' AND not_before<=? "
            "ORDER BY shard_id LIMIT ?",
            (now, limit),
        )
        return [ShardRun.from_row(r) for r in rows]

    def next_wakeup(self) -> float | None:
        """The earliest not_before of a delayed pending shard, or None."""
        row = self.conn.execute(
            "SELECT MIN(not_before) FROM shard_runs WHERE state='pending'"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_submitting(self, shard_id: int) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE shard_runs SET state='submitting', attempts=attempts+1, submitted_at=?, "
                "error=NULL WHERE shard_id=?",
                (self._now(), shard_id),
            )

    def mark_running(self, shard_id: int, operation: str) -> None:
        """The POST answered: commit the operation name before anything else happens."""
        now = self._now()
        with self._tx():
            attempt = self.conn.execute(
                "SELECT attempts FROM shard_runs WHERE shard_id=?", (shard_id,)
            ).fetchone()[0]
            self.conn.execute(
                "UPDATE shard_runs SET state='running', operation=?, success=0, failure=0 "
                "WHERE shard_id=?",
                (operation, shard_id),
            )
            self.conn.execute(
                "INSERT OR IGNORE INTO operations (name, shard_id, attempt, started_at) "
                "VALUES (?, ?, ?, ?)",
                (operation, shard_id, attempt, now),
            )

    def record_progress(self, updates: Iterable[tuple[str, int, int]]) -> None:
        """Live counters (operation, success, failure) of running operations, in one commit."""
        rows = [(s, f, name) for name, s, f in updates]
        if not rows:
            return
        with self._tx():
            self.conn.executemany("UPDATE operations SET success=?, failure=? WHERE name=?", rows)
            self.conn.executemany(
                "UPDATE shard_runs SET success=?, failure=? WHERE operation=? AND state='running'",
                rows,
            )

    def mark_finished(
        self,
        shard_id: int,
        operation: str,
        *,
        success: int,
        failure: int,
        error: str | None,
        state: ShardState,
        drift: bool = False,
        retry_at: float | None = None,
    ) -> None:
        """An operation ended: the shard is done, failed, or (``retry_at``) pending again."""
        now = self._now()
        with self._tx():
            self.conn.execute(
                "UPDATE operations SET done=1, ended_at=?, success=?, failure=?, error=? "
                "WHERE name=?",
                (now, success, failure, error, operation),
            )
            self.conn.execute(
                "UPDATE shard_runs SET state=?, ended_at=?, success=?, failure=?, error=?, "
                "drift=?, not_before=? WHERE shard_id=?",
                (
                    state.value,
                    now if state in TERMINAL else None,
                    success,
                    failure,
                    error,
                    int(drift),
                    retry_at or 0.0,
                    shard_id,
                ),
            )
            kind = "requeued" if state == ShardState.PENDING else state.value
            self._event(shard_id, kind, error or f"success={success} failure={failure}")

    def requeue(self, shard_id: int, retry_at: float, reason: str) -> None:
        """A start that did not happen (quota, transient error): try again at ``retry_at``."""
        with self._tx():
            self.conn.execute(
                "UPDATE shard_runs SET state='pending', not_before=?, error=? WHERE shard_id=?",
                (retry_at, reason, shard_id),
            )
            self._event(shard_id, "requeued", reason)

    def mark_failed(self, shard_id: int, error: str) -> None:
        """A start refused for good (bad request): the shard fails without an operation."""
        with self._tx():
            self.conn.execute(
                "UPDATE shard_runs SET state='failed', ended_at=?, error=? WHERE shard_id=?",
                (self._now(), error, shard_id),
            )
            self._event(shard_id, "failed", error)

    def event(self, shard_id: int | None, kind: str, detail: str) -> None:
        with self._tx():
            self._event(shard_id, kind, detail)

    # -- queries -----------------------------------------------------------------------------

    def shards_in(self, state: ShardState) -> list[ShardRun]:
        rows = self.conn.execute(
            "SELECT * FROM shard_runs WHERE state=? ORDER BY shard_id", (state.value,)
        )
        return [ShardRun.from_row(r) for r in rows]

    def iter_shards(self) -> Iterator[ShardRun]:
        for row in self.conn.execute("SELECT * FROM shard_runs ORDER BY shard_id"):
            yield ShardRun.from_row(row)

    def totals(self) -> RunTotals:
        row = self.conn.execute(
            """SELECT COUNT(*),
                      COALESCE(SUM(state='done'), 0),
                      COALESCE(SUM(state='failed'), 0),
                      COALESCE(SUM(state IN ('running', 'submitting')), 0),
                      COALESCE(SUM(state='pending'), 0),
                      COALESCE(SUM(success), 0), COALESCE(SUM(failure), 0),
                      COALESCE(SUM(expected), 0), COALESCE(SUM(bytes), 0),
                      COALESCE(SUM(CASE WHEN state='done' THEN bytes ELSE 0 END), 0)
               FROM shard_runs"""
        ).fetchone()
        return RunTotals(*(int(v) for v in row))

    def recent_events(self, limit: int = 20, kinds: tuple[str, ...] = ()) -> list[Event]:
        sql = "SELECT at, shard_id, kind, detail FROM events"
        params: list[object] = []
        if kinds:
            sql += f" WHERE kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = self.conn.execute(sql, params).fetchall()
        return [Event(r[0], r[1], r[2], r[3]) for r in reversed(rows)]

    def operation_count(self, shard_id: int) -> int:
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM operations WHERE shard_id=?", (shard_id,)
            ).fetchone()[0]
        )

    # -- internals ---------------------------------------------------------------------------

    def _event(self, shard_id: int | None, kind: str, detail: str) -> None:
        self.conn.execute(
            "INSERT INTO events (at, shard_id, kind, detail) VALUES (?, ?, ?, ?)",
            (self._now(), shard_id, kind, detail),
        )

    def _tx(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.depth_owner = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.depth_owner = True
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.depth_owner:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
