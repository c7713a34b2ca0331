"""The emulator's index: one SQLite file (WAL) under ``--data-dir``, instance bytes beside it.

All access happens on the event loop thread through one connection, so a check-then-insert
(the duplicate rule) is atomic. Writes accumulate in one open transaction that the flusher commits
every few milliseconds; what must be durable before an answer (a created store, a started
operation) commits at once. Each commit holds whole steps (an instance, its operation item and the
operation's counters), so the state after a crash is a consistent prefix.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmover.emulator.healthcare.dicomfiles import InstanceRecord
from bulkmover.emulator.healthcare.names import DatasetName, StoreName

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    project TEXT NOT NULL, location TEXT NOT NULL, dataset TEXT NOT NULL,
    time_zone TEXT NOT NULL, create_time TEXT NOT NULL,
    PRIMARY KEY (project, location, dataset));
CREATE TABLE IF NOT EXISTS stores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL, location TEXT NOT NULL, dataset TEXT NOT NULL, store TEXT NOT NULL,
    config TEXT NOT NULL, create_time TEXT NOT NULL,
    UNIQUE (project, location, dataset, store));
CREATE TABLE IF NOT EXISTS instances (
    store_id INTEGER NOT NULL, sop TEXT NOT NULL, study TEXT NOT NULL, series TEXT NOT NULL,
    sop_class TEXT NOT NULL, syntax TEXT NOT NULL, size INTEGER NOT NULL,
    structured_size INTEGER NOT NULL, frames INTEGER NOT NULL, attrs TEXT NOT NULL,
    blob TEXT NOT NULL, op TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (store_id, sop)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS instances_by_study ON instances (store_id, study, series, seq);
CREATE INDEX IF NOT EXISTS instances_by_seq ON instances (store_id, seq);
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL, location TEXT NOT NULL, dataset TEXT NOT NULL,
    store_id INTEGER, store_path TEXT NOT NULL, method TEXT NOT NULL, version TEXT NOT NULL,
    request TEXT NOT NULL, create_time TEXT NOT NULL, end_time TEXT,
    done INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT, response TEXT, plan TEXT NOT NULL DEFAULT '{}',
    success INTEGER NOT NULL DEFAULT 0, failure INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
    logged INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS operations_by_dataset ON operations (project, location, dataset, seq);
CREATE TABLE IF NOT EXISTS op_items (
    op_seq INTEGER NOT NULL, item TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY (op_seq, item)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, op_id TEXT NOT NULL,
    entry TEXT NOT NULL, visible_at REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS log_entries_by_op ON log_entries (project, op_id, id);
"""


@dataclass(frozen=True)
class StoreRow:
    id: int
    name: StoreName
    config: dict[str, Any]
    create_time: str


@dataclass(frozen=True)
class OperationRow:
    seq: int
    name: str
    dataset: DatasetName
    store_id: int | None
    store_path: str
    method: str
    version: str
    request: dict[str, Any]
    create_time: str
    end_time: str | None
    done: bool
    cancel_requested: bool
    error: dict[str, Any] | None
    response: dict[str, Any] | None
    plan: dict[str, Any]
    success: int
    failure: int
    pending: int
    skipped: int
    logged: int

    @property
    def op_id(self) -> str:
        return self.name.rsplit("/", 1)[1]


@dataclass(frozen=True)
class InstanceRow:
    store_id: int
    study: str
    series: str
    sop: str
    sop_class: str
    syntax: str
    size: int
    structured_size: int
    frames: int
    attrs: dict[str, str]
    blob: str


def _op(row: sqlite3.Row) -> OperationRow:
    return OperationRow(
        seq=row["seq"],
        name=row["name"],
        dataset=DatasetName(row["project"], row["location"], row["dataset"]),
        store_id=row["store_id"],
        store_path=row["store_path"],
        method=row["method"],
        version=row["version"],
        request=json.loads(row["request"]),
        create_time=row["create_time"],
        end_time=row["end_time"],
        done=bool(row["done"]),
        cancel_requested=bool(row["cancel_requested"]),
        error=json.loads(row["error"]) if row["error"] else None,
        response=json.loads(row["response"]) if row["response"] else None,
        plan=json.loads(row["plan"]),
        success=row["success"],
        failure=row["failure"],
        pending=row["pending"],
        skipped=row["skipped"],
        logged=row["logged"],
    )


def instance_row(row: sqlite3.Row) -> InstanceRow:
    return InstanceRow(
        store_id=row["store_id"],
        study=row["study"],
        series=row["series"],
        sop=row["sop"],
        sop_class=row["sop_class"],
        syntax=row["syntax"],
        size=row["size"],
        structured_size=row["structured_size"],
        frames=row["frames"],
        attrs=json.loads(row["attrs"]),
        blob=row["blob"],
    )


class Database:
    """Typed reads and writes of the index; ``commit`` makes the open transaction durable."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.blob_dir = data_dir / "blobs"
        self.staging_dir = data_dir / "staging"
        self.blob_dir.mkdir(exist_ok=True)
        self.staging_dir.mkdir(exist_ok=True)
        self.conn = sqlite3.connect(
            data_dir / "healthcare.sqlite3", isolation_level=None, check_same_thread=False
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self._migrate_log_entries()
        self._seq = self._scalar("SELECT COALESCE(MAX(seq), 0) FROM instances")
        self.dirty = False

    def _migrate_log_entries(self) -> None:
        """Give a data dir from before ``--log-ingestion-delay`` the column (entries: visible)."""
        columns = {row["name"] for row in self.query("PRAGMA table_info(log_entries)")}
        if "visible_at" not in columns:
            self.conn.execute(
                "ALTER TABLE log_entries ADD COLUMN visible_at REAL NOT NULL DEFAULT 0"
            )

    # -- transactions -------------------------------------------------------------------------
    def _begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        self.dirty = True

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self.dirty = False

    def close(self) -> None:
        self.commit()
        self.conn.close()

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self.conn.execute(sql, params).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    # -- datasets -----------------------------------------------------------------------------
    def add_dataset(self, name: DatasetName, time_zone: str, now: str) -> None:
        self._begin()
        self.conn.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?)",
            (name.project, name.location, name.dataset, time_zone, now),
        )

    def dataset(self, name: DatasetName) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM datasets WHERE project=? AND location=? AND dataset=?",
            (name.project, name.location, name.dataset),
        ).fetchone()
        return row

    def datasets(self, project: str, location: str, after: str, limit: int) -> list[sqlite3.Row]:
        return self.query(
            "SELECT * FROM datasets WHERE project=? AND location=? AND dataset>? "
            "ORDER BY dataset LIMIT ?",
            (project, location, after, limit),
        )

    # -- stores -------------------------------------------------------------------------------
    def add_store(self, name: StoreName, config: dict[str, Any], now: str) -> None:
        self._begin()
        self.conn.execute(
            "INSERT INTO stores (project, location, dataset, store, config, create_time) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name.project, name.location, name.dataset, name.store, json.dumps(config), now),
        )

    def _store(self, row: sqlite3.Row) -> StoreRow:
        name = StoreName(row["project"], row["location"], row["dataset"], row["store"])
        return StoreRow(row["id"], name, json.loads(row["config"]), row["create_time"])

    def store(self, name: StoreName) -> StoreRow | None:
        row = self.conn.execute(
            "SELECT * FROM stores WHERE project=? AND location=? AND dataset=? AND store=?",
            (name.project, name.location, name.dataset, name.store),
        ).fetchone()
        return self._store(row) if row else None

    def store_by_id(self, store_id: int) -> StoreRow | None:
        row = self.conn.execute("SELECT * FROM stores WHERE id=?", (store_id,)).fetchone()
        return self._store(row) if row else None

    def stores(self, dataset: DatasetName, after: str, limit: int) -> list[StoreRow]:
        rows = self.query(
            "SELECT * FROM stores WHERE project=? AND location=? AND dataset=? AND store>? "
            "ORDER BY store LIMIT ?",
            (dataset.project, dataset.location, dataset.dataset, after, limit),
        )
        return [self._store(r) for r in rows]

    def delete_store(self, store_id: int) -> None:
        self._begin()
        self.conn.execute("DELETE FROM instances WHERE store_id=?", (store_id,))
        self.conn.execute("DELETE FROM stores WHERE id=?", (store_id,))

    def store_dir(self, store_id: int) -> Path:
        return self.blob_dir / str(store_id)

    # -- instances ----------------------------------------------------------------------------
    def has_instance(self, store_id: int, sop: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM instances WHERE store_id=? AND sop=?", (store_id, sop)
        ).fetchone()
        return row is not None

    def blob_path(self, store_id: int, rec: InstanceRecord) -> Path:
        return self.store_dir(store_id) / rec.study_uid / f"{rec.sop_uid}.dcm"

    def add_instance(self, store_id: int, rec: InstanceRecord, blob: Path, op: str) -> None:
        self._begin()
        self._seq += 1
        self.conn.execute(
            "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                store_id,
                rec.sop_uid,
                rec.study_uid,
                rec.series_uid,
                rec.sop_class_uid,
                rec.transfer_syntax,
                rec.size,
                rec.structured_size,
                rec.frames,
                json.dumps(rec.attributes),
                str(blob.relative_to(self.data_dir)),
                op,
                self._seq,
            ),
        )

    def instance(self, store_id: int, study: str, series: str, sop: str) -> InstanceRow | None:
        row = self.conn.execute(
            "SELECT * FROM instances WHERE store_id=? AND sop=? AND study=? AND series=?",
            (store_id, sop, study, series),
        ).fetchone()
        return instance_row(row) if row else None

    def instances_under(
        self, store_id: int, study: str | None, series: str | None, sop: str | None
    ) -> list[InstanceRow]:
        """Instances of the store, a study, a series or one instance (in import order)."""
        sql = "SELECT * FROM instances WHERE store_id=?"
        params: list[Any] = [store_id]
        for column, value in (("study", study), ("series", series), ("sop", sop)):
            if value is not None:
                sql += f" AND {column}=?"
                params.append(value)
        return [instance_row(r) for r in self.query(sql + " ORDER BY seq", params)]

    def metrics(self, store_id: int) -> sqlite3.Row:
        row: sqlite3.Row = self.conn.execute(
            "SELECT COUNT(*) AS instances, COUNT(DISTINCT series) AS series, "
            "COUNT(DISTINCT study) AS studies, COALESCE(SUM(size), 0) AS size, "
            "COALESCE(SUM(structured_size), 0) AS structured FROM instances WHERE store_id=?",
            (store_id,),
        ).fetchone()
        return row

    # -- operations ---------------------------------------------------------------------------
    def add_operation(
        self,
        *,
        name: str,
        dataset: DatasetName,
        store_id: int | None,
        store_path: str,
        method: str,
        version: str,
        request: dict[str, Any],
        now: str,
        plan: dict[str, Any],
    ) -> OperationRow:
        self._begin()
        self.conn.execute(
            "INSERT INTO operations (name, project, location, dataset, store_id, store_path, "
            "method, version, request, create_time, plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                dataset.project,
                dataset.location,
                dataset.dataset,
                store_id,
                store_path,
                method,
                version,
                json.dumps(request),
                now,
                json.dumps(plan),
            ),
        )
        op = self.operation(name)
        assert op is not None
        return op

    def operation(self, name: str) -> OperationRow | None:
        row = self.conn.execute("SELECT * FROM operations WHERE name=?", (name,)).fetchone()
        return _op(row) if row else None

    def operation_exists(self, op_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM operations WHERE name LIKE ?", (f"%/operations/{op_id}",)
        ).fetchone()
        return row is not None

    def operations(
        self, dataset: DatasetName | None, done: bool | None, after_seq: int, limit: int
    ) -> list[OperationRow]:
        sql = "SELECT * FROM operations WHERE seq>?"
        params: list[Any] = [after_seq]
        if dataset is not None:
            sql += " AND project=? AND location=? AND dataset=?"
            params += [dataset.project, dataset.location, dataset.dataset]
        if done is not None:
            sql += " AND done=?"
            params.append(int(done))
        return [_op(r) for r in self.query(sql + " ORDER BY seq LIMIT ?", [*params, limit])]

    def unfinished_operations(self) -> list[OperationRow]:
        return [_op(r) for r in self.query("SELECT * FROM operations WHERE done=0 ORDER BY seq")]

    def running_in_project(self, project: str) -> int:
        return self._scalar(
            "SELECT COUNT(*) FROM operations WHERE project=? AND done=0 AND store_id IS NOT NULL",
            (project,),
        )

    def request_cancel(self, name: str) -> None:
        self._begin()
        self.conn.execute("UPDATE operations SET cancel_requested=1 WHERE name=?", (name,))

    def save_progress(
        self, seq: int, success: int, failure: int, pending: int, skipped: int, logged: int
    ) -> None:
        self._begin()
        self.conn.execute(
            "UPDATE operations SET success=?, failure=?, pending=?, skipped=?, logged=? "
            "WHERE seq=?",
            (success, failure, pending, skipped, logged, seq),
        )

    def finish_operation(
        self,
        seq: int,
        end_time: str,
        error: dict[str, Any] | None,
        response: dict[str, Any] | None,
    ) -> None:
        self._begin()
        self.conn.execute(
            "UPDATE operations SET done=1, end_time=?, error=?, response=? WHERE seq=?",
            (
                end_time,
                json.dumps(error) if error else None,
                json.dumps(response) if response else None,
                seq,
            ),
        )

    def add_items(self, seq: int, items: Iterable[tuple[str, str]]) -> None:
        self._begin()
        self.conn.executemany(
            "INSERT OR REPLACE INTO op_items VALUES (?, ?, ?)",
            ((seq, item, outcome) for item, outcome in items),
        )

    def done_items(self, seq: int) -> set[str]:
        rows = self.query("SELECT item FROM op_items WHERE op_seq=?", (seq,))
        return {r[0] for r in rows}

    def operation_instances(self, store_id: int, op: str) -> set[str]:
        rows = self.query("SELECT sop FROM instances WHERE store_id=? AND op=?", (store_id, op))
        return {r[0] for r in rows}

    # -- logs ---------------------------------------------------------------------------------
    def add_log_entry(
        self, project: str, op_id: str, entry: dict[str, Any], delay: float = 0.0
    ) -> None:
        """Log ``entry``; ``entries:list`` shows it only ``delay`` seconds from now (wall clock,
        so the delay holds across a restart)."""
        self._begin()
        self.conn.execute(
            "INSERT INTO log_entries (project, op_id, entry, visible_at) VALUES (?, ?, ?, ?)",
            (project, op_id, json.dumps(entry), time.time() + delay),
        )

    def log_entries(
        self,
        projects: Sequence[str],
        op_ids: Sequence[str] | None,
        *,
        visible_by: float,
        after_id: int | None = None,
        descending: bool = False,
        limit: int = 1000,
    ) -> list[sqlite3.Row]:
        """Entries of ``projects`` (of ``op_ids`` only, if given) visible at ``visible_by``, in
        write order (or reversed) after row ``after_id``: keyset pages, so entries that become
        visible meanwhile shift no page."""
        marks = ",".join("?" * len(projects))
        sql = f"SELECT id, entry FROM log_entries WHERE project IN ({marks}) AND visible_at<=?"
        params: list[Any] = [*projects, visible_by]
        if op_ids is not None:
            sql += f" AND op_id IN ({','.join('?' * len(op_ids))})"
            params += op_ids
        if after_id is not None:
            sql += " AND id<?" if descending else " AND id>?"
            params.append(after_id)
        sql += " ORDER BY id DESC LIMIT ?" if descending else " ORDER BY id LIMIT ?"
        return self.query(sql, [*params, limit])
