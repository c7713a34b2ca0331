"""The executor's half of the state file: each shard's run state, its operations, and events.

The columns live on the planner's ``shards`` table (schema migration 2), so a shard has one state
that both ``plan --replan`` and ``run`` respect. Every transition is one short transaction,
committed before anything depends on it, so any prefix of the commits is a consistent state:

    pending --claim--> running (no operation yet) --POST answered--> running (operation)
       ^                      |   resolving, after a crash --adopt--^           |
       +------- requeue ------+-------------------------------------------------+--> done | failed

A shard found ``running`` with no operation on resume is *resolving*: its POST may or may not
have started an import (the answer was lost). It stays ``running`` until the executor resolves
it: it finds the operation started for it (after ``submitted_at``, not in
``known_operations``) and ``adopt``s it, or it ``requeue``s the shard. A shard found ``running``
with an operation name re-attaches to it and is never submitted again while that operation may
still be running.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from bulkmover.state.files import FileLedger
from bulkmover.state.store import ShardState
from bulkmover.state.transaction import transaction

TERMINAL = (ShardState.DONE, ShardState.FAILED)
_COLUMNS = (
    "id, uri, objects, bytes, state, operation, attempts, not_before, submitted_at, ended_at, "
    "success, failure, error, drift, start_sent_at, start_lost_at"
)


@dataclass(frozen=True)
class ShardRun:
    """A shard as the executor sees it: the plan's URI and counts, plus its run state."""

    shard_id: int
    uri: str
    expected: int
    bytes: int
    state: ShardState
    operation: str | None
    attempts: int
    not_before: float
    submitted_at: float | None
    """When the last claim was committed (epoch seconds): an import its POST started began
    after it, so it opens the window to search when the answer was lost."""
    ended_at: float | None
    success: int
    failure: int
    error: str | None
    drift: bool
    start_sent_at: float | None = None
    """A start whose answer was lost: when its last attempt left (epoch seconds) ..."""
    start_lost_at: float | None = None
    """... and when its failure came back; its operation, if any, was created in between."""

    @property
    def lost_window(self) -> tuple[float, float | None]:
        """Where a lost start's operation may have been created: from the last attempt's send
        (else the claim) to the failure (None: open, the run died with the start in flight)."""
        sent = self.start_sent_at if self.start_sent_at is not None else self.submitted_at
        return (sent or 0.0, self.start_lost_at)

    @classmethod
    def from_row(cls, row: Any) -> ShardRun:
        return cls(
            row[0], row[1], row[2], row[3], ShardState(row[4]), row[5], row[6], row[7],
            row[8], row[9], row[10], row[11], row[12], bool(row[13]), row[14], row[15],
        )  # fmt: skip


@dataclass(frozen=True)
class RunTotals:
    """Run progress over every shard (``PlanTotals`` is what the plan holds)."""

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

    @property
    def processed(self) -> int:
        return self.success + self.failure

    def as_dict(self) -> dict[str, int]:
        """The totals as the JSON documents (`run --json`, `status --json`) print them."""
        return {
            "shards": self.shards,
            "done": self.done,
            "failed": self.failed,
            "running": self.running,
            "pending": self.pending,
            "success": self.success,
            "failure": self.failure,
            "expected": self.expected,
            "bytes": self.bytes_expected,
        }


@dataclass(frozen=True)
class Recovered:
    """What ``recover_interrupted`` found ``running``: shards to re-attach to (``running``,
    with an operation) and shards whose POST's outcome is unknown (``unresolved``)."""

    running: list[ShardRun]
    unresolved: list[ShardRun]


@dataclass(frozen=True)
class Event:
    at: float
    shard_id: int | None
    kind: str
    detail: str


class RunLedger:
    """Shard run states, operations and events on an open state file (one writer: ``run``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._now = time.time
        self.files = FileLedger(conn, self._event)

    # -- transitions (each one committed) ----------------------------------------------------

    def recover_interrupted(self) -> Recovered:
        """On start: the ``running`` shards, split by whether their operation name is known.

        Nothing changes state here: a nameless shard may have an import running, so only the
        executor, once it has looked, may ``adopt`` it or ``requeue`` it.
        """
        with self._tx():
            running = self.shards_in(ShardState.RUNNING)
            unresolved = [s for s in running if s.operation is None]
            if unresolved:
                n = len(unresolved)
                self._event(None, "resume", f"{n} shard(s) had no operation name yet: resolving")
        return Recovered([s for s in running if s.operation is not None], unresolved)

    def next_pending(self, now: float, limit: int = 64) -> list[ShardRun]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM shards WHERE state='pending' AND not_before<=? "
            "ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [ShardRun.from_row(r) for r in rows]

    def next_wakeup(self) -> float | None:
        """The earliest not_before of a pending shard, or None when none is pending."""
        row = self.conn.execute(
            "SELECT MIN(not_before) FROM shards WHERE state='pending'"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def claim(self, shard_id: int) -> None:
        """About to POST its import: ``running`` with no operation, one more attempt."""
        with self._tx():
            self.conn.execute(
                "UPDATE shards SET state='running', operation=NULL, attempts=attempts+1, "
                "submitted_at=?, success=0, failure=0, error=NULL, start_sent_at=NULL, "
                "start_lost_at=NULL WHERE id=?",
                (self._now(), shard_id),
            )

    def mark_running(self, shard_id: int, operation: str) -> None:
        """The POST answered: commit the operation name before anything else happens."""
        with self._tx():
            self._attach(shard_id, operation)

    def mark_start_lost(self, shard_id: int, sent_at: float, lost_at: float, reason: str) -> None:
        """The start's answer was lost (it stays claimed, resolving): keep its window."""
        with self._tx():
            self.conn.execute(
                "UPDATE shards SET start_sent_at=?, start_lost_at=?, error=? WHERE id=?",
                (sent_at, lost_at, reason, shard_id),
            )
            self._event(shard_id, "start-lost", reason)

    def adopt(self, shard_id: int, operation: str, reason: str) -> None:
        """A resolving shard's lost POST did start ``operation``: attach it, say why."""
        with self._tx():
            self._attach(shard_id, operation)
            self._event(shard_id, "adopted", f"{operation}: {reason}")

    def record_progress(self, updates: Iterable[tuple[str, int, int]]) -> None:
        """Live counters (operation, success, failure) of running operations, in one commit."""
        rows = [(ok, bad, name) for name, ok, bad in updates]
        if not rows:
            return
        with self._tx():
            self.conn.executemany("UPDATE operations SET success=?, failure=? WHERE name=?", rows)
            self.conn.executemany(
                "UPDATE shards SET success=?, failure=? WHERE operation=? AND state='running'",
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
        error_code: int | None = None,
    ) -> None:
        """An operation ended: the shard is done, failed, or (PENDING) queued again; its files
        settle as far as the counters tell (``FileLedger.on_shard_finished``)."""
        now = self._now()
        with self._tx():
            self.conn.execute(
                "UPDATE operations SET done=1, ended_at=?, success=?, failure=?, error=? "
                "WHERE name=?",
                (now, success, failure, error, operation),
            )
            self.conn.execute(
                "UPDATE shards SET state=?, ended_at=?, success=?, failure=?, error=?, drift=?, "
                "not_before=? WHERE id=?",
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
            self.files.on_shard_finished(
                shard_id,
                state,
                failure,
                (error_code or 2, error or "") if error else None,
                drift=drift,
            )

    def requeue(self, shard_id: int, retry_at: float, reason: str) -> None:
        """A start that did not happen (quota, transient error): try again at ``retry_at``."""
        with self._tx():
            self.conn.execute(
                "UPDATE shards SET state='pending', operation=NULL, not_before=?, error=? "
                "WHERE id=?",
                (retry_at, reason, shard_id),
            )
            self._event(shard_id, "requeued", reason)

    def mark_failed(self, shard_id: int, error: str, error_code: int | None = None) -> None:
        """A start refused for good (bad request): the shard and its files fail, no operation."""
        with self._tx():
            self.conn.execute(
                "UPDATE shards SET state='failed', ended_at=?, error=? WHERE id=?",
                (self._now(), error, shard_id),
            )
            self._event(shard_id, "failed", error)
            self.files.on_shard_finished(shard_id, ShardState.FAILED, 0, (error_code or 2, error))

    def retry_failed(self, error_code: int | None = None) -> int:
        """Put shards that failed as a whole back in the queue, their files ``pending`` again
        (only those whose files failed with ``error_code``, if given). Failed files of shards
        that ran are retried file by file (``bulkmover.outcomes.retry``)."""
        where = "state='failed'"
        params: tuple[int, ...] = ()
        if error_code is not None:
            where += (
                " AND id IN (SELECT shard_id FROM objects WHERE outcome='failed' AND error_code=?)"
            )
            params = (error_code,)
        with self._tx():
            ids = [r[0] for r in self.conn.execute(f"SELECT id FROM shards WHERE {where}", params)]
            for shard_id in ids:
                self.files.reopen(shard_id)
            self.conn.executemany(
                "UPDATE shards SET state='pending', not_before=0, operation=NULL, files=NULL"
                " WHERE id=?",
                [(shard_id,) for shard_id in ids],
            )
            n = len(ids)
            if n:
                self._event(None, "retry", f"{n} failed shard(s) queued again")
        return int(n)

    def event(self, shard_id: int | None, kind: str, detail: str) -> None:
        with self._tx():
            self._event(shard_id, kind, detail)

    # -- queries -----------------------------------------------------------------------------

    def shards_in(self, state: ShardState) -> list[ShardRun]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM shards WHERE state=? ORDER BY id", (state.value,)
        )
        return [ShardRun.from_row(r) for r in rows]

    def iter_shards(self) -> Iterator[ShardRun]:
        for row in self.shard_rows():
            yield ShardRun.from_row(row)

    def shard_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every shard as a raw row in ShardRun's field order (for bulk output)."""
        yield from self.conn.execute(f"SELECT {_COLUMNS} FROM shards ORDER BY id")

    def totals(self) -> RunTotals:
        row = self.conn.execute(
            """SELECT COUNT(*),
                      COALESCE(SUM(state='done'), 0),
                      COALESCE(SUM(state='failed'), 0),
                      COALESCE(SUM(state='running'), 0),
                      COALESCE(SUM(state='pending'), 0),
                      COALESCE(SUM(success), 0), COALESCE(SUM(failure), 0),
                      COALESCE(SUM(objects), 0), COALESCE(SUM(bytes), 0),
                      COALESCE(SUM(CASE WHEN state='done' THEN bytes ELSE 0 END), 0)
               FROM shards WHERE parent_id IS NULL"""
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

    def known_operations(self) -> set[str]:
        """Every operation name ever recorded (any shard, any attempt, running or ended)."""
        return {row[0] for row in self.conn.execute("SELECT name FROM operations")}

    def operation_times(self) -> dict[str, tuple[float | None, float]]:
        """Every known operation's (claim of its start, record of its answer), epoch seconds:
        its createTime lies between, on the server's clock."""
        rows = self.conn.execute("SELECT name, sent_at, started_at FROM operations")
        return {name: (sent, answered) for name, sent, answered in rows}

    def typical_operation_seconds(self, recent: int = 50) -> float | None:
        """The median duration of the last ``recent`` operations that ended (claim to end), or
        None before any did: what one more small import costs, for the per-file stage."""
        rows = self.conn.execute(
            "SELECT ended_at - coalesce(sent_at, started_at) FROM operations"
            " WHERE done=1 AND ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT ?",
            (recent,),
        ).fetchall()
        durations = sorted(max(0.0, float(r[0])) for r in rows)
        return durations[len(durations) // 2] if durations else None

    def operation_count(self, shard_id: int) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM operations WHERE shard_id=?", (shard_id,))
        return int(row.fetchone()[0])

    def activity_span(self) -> tuple[float, float] | None:
        """(first operation start, last operation end) in epoch seconds, if any ran."""
        row = self.conn.execute("SELECT MIN(started_at), MAX(ended_at) FROM operations").fetchone()
        if row[0] is None:
            return None
        return float(row[0]), float(row[1] if row[1] is not None else row[0])

    # -- internals ---------------------------------------------------------------------------

    def _event(self, shard_id: int | None, kind: str, detail: str) -> None:
        self.conn.execute(
            "INSERT INTO events (at, shard_id, kind, detail) VALUES (?, ?, ?, ?)",
            (self._now(), shard_id, kind, detail),
        )

    def _attach(self, shard_id: int, operation: str) -> None:
        self.conn.execute("UPDATE shards SET operation=? WHERE id=?", (operation, shard_id))
        self.conn.execute(
            "INSERT OR IGNORE INTO operations (name, shard_id, attempt, started_at, sent_at) "
            "SELECT ?, id, attempts, ?, submitted_at FROM shards WHERE id=?",
            (operation, self._now(), shard_id),
        )

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.conn)
