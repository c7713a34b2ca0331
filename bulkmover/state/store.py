"""The state file: one SQLite database (WAL) holding the plan, its shards and the per-file ledger.

SQLite as the style guide has it: WAL mode, one writer, short transactions, readers never
block. A plan is written in one transaction, so a state file holds either the old plan or the
new one, never half of each. Records cross the boundary as frozen dataclasses.

Every write is one ``transaction`` (see ``bulkmover.state.transaction``); shard run states
change only through ``StateStore.runs`` (``bulkmover.state.runs``).

>>> with StateStore.open(path) as store:                       # doctest: +SKIP
...     for shard in store.shards(ShardState.PENDING):
...         print(shard.id, shard.uri, shard.objects)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from bulkmover.errors import StateError
from bulkmover.state.integrity import connect
from bulkmover.state.schema import MIGRATIONS, SCHEMA_VERSION
from bulkmover.state.staging import shard_condition
from bulkmover.state.transaction import transaction

if TYPE_CHECKING:
    from bulkmover.state.runs import RunLedger

APPLICATION_ID = 0x626D7672  # "bmvr": marks a SQLite file as a bulkmover state file


# A shard has *run* once the executor started it, even if it was queued again since (state back
# to pending, attempts > 0, see bulkmover.state.runs). Replanning keeps every shard that has run,
# and every child shard (resolution, file retry): those belong to shards that ran.
def has_run(table: str = "") -> str:
    """SQL condition: the shard (of ``table``, an alias, if given) has run."""
    t = f"{table}." if table else ""
    return f"({t}state != 'pending' OR {t}attempts > 0 OR {t}parent_id IS NOT NULL)"


class ShardState(StrEnum):
    """Where a shard is in its life. ``pending`` until the executor starts it."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Shard:
    """One import operation to run: ``uri`` is the ``gcsSource.uri``."""

    id: int
    uri: str
    objects: int
    bytes: int
    state: ShardState
    prefix: str
    """Literal start of the URI's object part; ledger names are relative to it."""
    plan_id: int


@dataclass(frozen=True, slots=True)
class LedgerObject:
    """One matched file of a shard (``name`` is the full object name)."""

    shard_id: int
    name: str
    size: int
    generation: int


@dataclass(frozen=True, slots=True)
class UnplannedObject:
    name: str
    size: int
    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """One planning run."""

    id: int
    created_at: str
    source: str
    max_objects_per_shard: int
    max_bytes_per_shard: int
    listed_objects: int
    matched_objects: int
    matched_bytes: int
    kept_shards: int
    new_shards: int
    unplanned_objects: int
    list_seconds: float
    seconds: float


@dataclass(frozen=True, slots=True)
class PlanTotals:
    """What the plan holds (shards, expected objects and bytes); ``RunTotals`` is the progress."""

    shards: int
    objects: int
    bytes: int


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StateStore:
    """An open state file. ``StateStore.open(path)``; use as a context manager to close it."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> StateStore:
        """Open (or create) the state file at ``path`` and bring its schema up to date."""
        path = Path(path)
        if path.exists() and path.is_file() and path.stat().st_size == 0:
            # SQLite would take an empty file for a new database: a plan and its progress
            # silently replaced. Only a truncation or a crash while creating it leaves one.
            raise StateError(
                f"state file {path} is empty (0 bytes): it holds no plan and no progress;"
                " restore it from a backup, or delete it to start over with `bulkmover plan`"
            )
        if not path.exists():
            if not create:
                raise StateError(f"state file {path} not found; run `bulkmover plan CONFIG` first")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StateError(
                    f"cannot create the directory of state file {path}: {err.strerror}; fix"
                    " `state:` in the config"
                ) from None
        conn = connect(path, timeout=30.0, autocommit=True)
        store = cls(path, conn)
        try:
            store._prepare()
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StateError(
                f"{path} is not a usable bulkmover state file ({err}); point `state:` at a new file"
            ) from None
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open an existing state file to read beside a running ``run`` (``status``).

        Nothing is prepared or migrated: WAL readers never block the writer, and a reader must
        not change the file.
        """
        if not path.exists():
            raise StateError(f"state file {path} not found; run `bulkmover plan CONFIG` first")
        conn = connect(path, timeout=10.0)
        try:
            # Not mode=ro: a read-only connection cannot build the WAL index (-shm) when a killed
            # run left none, and fails. query_only keeps this connection from ever writing.
            conn.execute("PRAGMA query_only = ON")
            conn.reader = True
            conn.execute("PRAGMA busy_timeout = 10000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _newer(path, version)
            conn.execute("SELECT operation FROM shards LIMIT 0")
        except sqlite3.Error as err:
            conn.close()
            raise StateError(
                f"cannot read state file {path} ({err}); was it written by `bulkmover plan`/`run`?"
            ) from None
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    def _prepare(self) -> None:
        conn = self.conn
        conn.execute("PRAGMA busy_timeout = 30000")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (tables or version):
            raise StateError(
                f"{self.path} is not a bulkmover state file; point `state:` at a new file"
            )
        if version > SCHEMA_VERSION:
            raise _newer(self.path, version)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            with transaction(conn):
                for number in range(version, SCHEMA_VERSION):
                    for statement in _statements(MIGRATIONS[number]):
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            # A file SQLite could open only for reading (immutable, read-only mount, no write
            # permission) fails at its first write: refuse it now, before a `plan` lists the
            # bucket or a `run` starts anything. The write is rolled back, never committed.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"PRAGMA user_version = {version}")
            finally:
                conn.execute("ROLLBACK")

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @cached_property
    def runs(self) -> RunLedger:
        """The executor's run state on this file: every shard transition goes through it."""
        from bulkmover.state.runs import RunLedger  # runs imports this module

        return RunLedger(self.conn)

    # --- reading -----------------------------------------------------------------------------

    def plans(self) -> list[PlanRecord]:
        rows = self.conn.execute(f"SELECT {_PLAN_COLUMNS} FROM plans ORDER BY id").fetchall()
        return [PlanRecord(*row) for row in rows]

    def latest_plan(self) -> PlanRecord | None:
        row = self.conn.execute(
            f"SELECT {_PLAN_COLUMNS} FROM plans ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return PlanRecord(*row) if row else None

    def shards(self, *states: ShardState) -> Iterator[Shard]:
        """Planned shards in id order, optionally only those in ``states`` (child shards of
        failure resolution and file retry are not part of the plan)."""
        query = f"SELECT {_SHARD_COLUMNS} FROM shards WHERE parent_id IS NULL"
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
        for row in self.conn.execute(query + " ORDER BY id", [str(s) for s in states]):
            yield _shard(row)

    def shard(self, shard_id: int) -> Shard:
        row = self.conn.execute(
            f"SELECT {_SHARD_COLUMNS} FROM shards WHERE id = ?", (shard_id,)
        ).fetchone()
        if row is None:
            raise StateError(f"shard {shard_id} is not in {self.path}; list shards with `plan`")
        return _shard(row)

    def totals(self) -> PlanTotals:
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(objects), 0), coalesce(sum(bytes), 0) FROM shards"
            " WHERE parent_id IS NULL"
        ).fetchone()
        return PlanTotals(*row)

    def ledger(self, shard_id: int) -> Iterator[LedgerObject]:
        """Every file of one shard, in name order."""
        self.shard(shard_id)  # StateError if there is no such shard
        rows = self.conn.execute(
            "SELECT d.path || o.name, o.size, o.generation FROM objects AS o"
            " JOIN directories AS d ON d.id = o.directory_id WHERE o.shard_id = ? ORDER BY 1",
            (shard_id,),
        )
        for name, size, generation in rows:
            yield LedgerObject(shard_id, name, size, generation)

    def shards_that_ran(self) -> int:
        """How many shards the executor has started (they survive ``plan --replan``)."""
        return int(
            self.conn.execute(f"SELECT count(*) FROM shards WHERE {has_run()}").fetchone()[0]
        )

    def kept_shards(self) -> list[Shard]:
        """The planned shards that have run, by id: ``plan --replan`` keeps them."""
        query = f"SELECT {_SHARD_COLUMNS} FROM shards WHERE parent_id IS NULL AND {has_run()}"
        return [_shard(row) for row in self.conn.execute(query + " ORDER BY id")]

    def unsettled_shards(self) -> int:
        """Shards running, or whose files are being settled (an interrupted ``run``)."""
        row = self.conn.execute(
            "SELECT count(*) FROM shards WHERE state = 'running'"
            " OR files IN ('checking', 'collecting', 'narrowing')"
        ).fetchone()
        return int(row[0])

    def names_in_shards_that_ran(self) -> Iterator[str]:
        """Full names of the ledger files of every shard that has run."""
        query = (
            "SELECT d.path || o.name FROM shards AS s JOIN objects AS o ON o.shard_id = s.id"
            f" JOIN directories AS d ON d.id = o.directory_id WHERE {has_run('s')}"
        )
        for (name,) in self.conn.execute(query):
            yield name

    def check_target(self, store: str, *, record: bool = False) -> None:
        """StateError when this file belongs to another DICOM store than ``store`` (a config
        pointed at someone else's state); ``record`` binds an unbound file to ``store``."""
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'target_store'").fetchone()
        except sqlite3.OperationalError:  # a read-only view of a file from before schema 4
            return
        if row is None:
            if record:
                with transaction(self.conn):
                    self.conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('target_store', ?)",
                        (store,),
                    )
            return
        if row[0] != store:
            raise StateError(
                f"state file {self.path} belongs to DICOM store {row[0]}, not {store}; fix"
                " `target:` or `state:` in the config"
            )

    def unplanned(self) -> Iterator[UnplannedObject]:
        rows = self.conn.execute(
            "SELECT name, size, generation, reason FROM unplanned ORDER BY name"
        )
        for row in rows:
            yield UnplannedObject(*row)

    # --- writing (shard states change only through ``runs``) ---------------------------------

    @contextmanager
    def writing_plan(self, draft: PlanDraft, stage: Path | None = None) -> Iterator[PlanWriter]:
        """One transaction that replaces the not-yet-run part of the plan (see ``PlanWriter``).

        ``stage`` is a sealed ``ListingStage`` file to copy ledger rows from (attached as
        ``stage`` for the duration).
        """
        if stage is not None:
            self.conn.execute("ATTACH DATABASE ? AS stage", (str(stage),))
        try:
            with transaction(self.conn) as conn:
                writer = PlanWriter(conn, draft)
                yield writer
                writer._finish()
        finally:
            if stage is not None:
                self.conn.execute("DETACH DATABASE stage")


@dataclass(frozen=True, slots=True)
class PlanDraft:
    """What is known about a planning run before its shards are written."""

    source: str
    max_objects_per_shard: int
    max_bytes_per_shard: int
    listed_objects: int
    matched_objects: int
    matched_bytes: int
    list_seconds: float


@dataclass(frozen=True, slots=True)
class KeptChanges:
    """What ``plan --replan`` found changed in the bucket under the shards it keeps."""

    added: int = 0
    """Names a kept shard's URI matches now that its ledger lacked: now in its ledger."""
    replaced: int = 0
    """Ledger files with a new generation: flagged ``changed``, to be imported again."""
    gone: int = 0
    """Ledger files no longer in the bucket: out of the ledger (and so of every total)."""
    children: int = 0
    """Child shards (purpose ``replan``) importing the added and replaced files."""

    @property
    def any(self) -> bool:
        return bool(self.added or self.replaced or self.gone)


@dataclass(frozen=True, slots=True)
class KeptFile:
    """A kept shard's ledger file that must be imported (added or replaced since it ran)."""

    home_id: int
    directory_id: int
    file: str
    name: str
    size: int


class PlanWriter:
    """Writes one plan inside ``StateStore.writing_plan``.

    On entry every shard that has not run (and its ledger rows) and every unplanned row is
    dropped: those are re-planned. Shards that have run (``has_run``) are kept, with their
    history (operations, events, outcomes); ``reconcile_kept`` brings their ledgers to the
    bucket as it is now. New shards get ids above every existing one.

    The invariant a replan keeps: every name the source matches now is imported by exactly one
    planned shard's URI and has exactly one ledger row, that shard's. A kept shard's URI also
    matches names added under it after it ran, so those are its files (no new shard may match
    them), imported by child shards of it (``purpose`` replan) whose URIs single them out.
    """

    def __init__(self, conn: sqlite3.Connection, draft: PlanDraft) -> None:
        self.conn = conn
        self.seconds = 0.0
        # Ids are never reused: the executor's operations and events refer to shards by id.
        top = conn.execute("SELECT coalesce(max(id), 0) FROM shards").fetchone()[0]
        self.next_id = int(top) + 1
        conn.execute(
            f"DELETE FROM objects WHERE shard_id IN (SELECT id FROM shards WHERE NOT {has_run()})"
        )
        conn.execute(f"DELETE FROM shards WHERE NOT {has_run()}")
        conn.execute(
            "DELETE FROM directories WHERE id NOT IN (SELECT DISTINCT directory_id FROM objects)"
        )
        conn.execute("DELETE FROM unplanned")
        self.kept: int = conn.execute("SELECT count(*) FROM shards").fetchone()[0]
        self.new_shards = 0
        self.unplanned = 0
        self.directory_offset = 0
        self._copied = False
        self._affected: list[int] = []
        cursor = conn.execute(
            "INSERT INTO plans (created_at, source, max_objects_per_shard, max_bytes_per_shard,"
            " listed_objects, matched_objects, matched_bytes, kept_shards, new_shards,"
            " unplanned_objects, list_seconds, seconds) VALUES (?,?,?,?,?,?,?,?,0,0,?,0)",
            (
                now(),
                draft.source,
                draft.max_objects_per_shard,
                draft.max_bytes_per_shard,
                draft.listed_objects,
                draft.matched_objects,
                draft.matched_bytes,
                self.kept,
                draft.list_seconds,
            ),
        )
        assert cursor.lastrowid is not None
        self.plan_id: int = cursor.lastrowid

    def add_shard(self, uri: str, prefix: str, objects: int, nbytes: int) -> int:
        """A new pending shard; returns its id."""
        shard_id = self.next_id
        self.next_id += 1
        self.conn.execute(
            "INSERT INTO shards (id, plan_id, uri, prefix, objects, bytes, state, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (shard_id, self.plan_id, uri, prefix, objects, nbytes, str(ShardState.PENDING), now()),
        )
        self.new_shards += 1
        return shard_id

    def add_objects(self, shard_id: int, rows: Iterable[tuple[str, int, int]]) -> None:
        """Ledger rows ``(full name, size, generation)`` of one shard."""
        directories: dict[str, int] = {}
        for name, size, generation in rows:
            cut = name.rfind("/") + 1
            path = name[:cut]
            directory_id = directories.get(path)
            if directory_id is None:
                cursor = self.conn.execute("INSERT INTO directories (path) VALUES (?)", (path,))
                assert cursor.lastrowid is not None
                directory_id = directories[path] = cursor.lastrowid
            self.conn.execute(
                "INSERT INTO objects (shard_id, directory_id, name, size, generation)"
                " VALUES (?,?,?,?,?)",
                (shard_id, directory_id, name[cut:], size, generation),
            )

    def copy_directories_from_stage(self) -> None:
        """The attached stage's directories, their ids shifted past every id in use."""
        top = self.conn.execute("SELECT coalesce(max(id), 0) FROM directories").fetchone()[0]
        self.directory_offset = int(top)
        self.conn.execute(
            "INSERT INTO directories (id, path) SELECT id + ?, path FROM stage.directories"
            " WHERE files > 0 ORDER BY id",
            (self.directory_offset,),
        )
        self._copied = True

    def copy_from_stage(
        self, shard_id: int, prefix: str, glob: str, slashes: int | None
    ) -> tuple[int, int]:
        """Ledger rows of a shard from the attached stage: the names that are not taken, start
        with ``prefix``, match ``glob`` (SQLite GLOB) and hold ``slashes`` slashes (if given).
        Returns (objects, bytes). Call ``copy_directories_from_stage`` first.
        """
        where, params = shard_condition("name", prefix, glob, slashes)
        self.conn.execute(
            "INSERT INTO objects (shard_id, directory_id, name, size, generation)"
            " SELECT ?, directory_id + ?, substr(name, cut + 1), size, generation"
            f" FROM stage.listing WHERE taken = 0 AND {where} ORDER BY name",
            (shard_id, self.directory_offset, *params),
        )
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM objects WHERE shard_id = ?", (shard_id,)
        ).fetchone()
        return int(row[0]), int(row[1])

    def taken_in_stage(self, prefix: str, glob: str, slashes: int | None) -> str | None:
        """A taken name of the attached stage that the shard condition accepts, if any."""
        where, params = shard_condition("name", prefix, glob, slashes)
        row = self.conn.execute(
            f"SELECT name FROM stage.listing WHERE taken != 0 AND {where} LIMIT 1", params
        ).fetchone()
        return str(row[0]) if row else None

    def add_unplanned_from_stage(self, names: Iterable[str], reason: str) -> None:
        """Unplanned rows for ``names``, with size and generation from the attached stage."""
        before = self.conn.total_changes
        for name in names:
            self.conn.execute(
                "INSERT INTO unplanned (name, size, generation, plan_id, reason)"
                " SELECT name, size, generation, ?, ? FROM stage.listing WHERE name = ?",
                (self.plan_id, reason, name),
            )
        self.unplanned += self.conn.total_changes - before

    def add_unplanned(self, rows: Iterable[tuple[str, int, int]], reason: str) -> None:
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT INTO unplanned (name, size, generation, plan_id, reason) VALUES (?,?,?,?,?)",
            ((name, size, gen, self.plan_id, reason) for name, size, gen in rows),
        )
        self.unplanned += self.conn.total_changes - before

    # --- replan: the kept shards' ledgers against the listing ---------------------------------

    def reconcile_kept(self) -> KeptChanges:
        """Bring the ledger of every kept planned shard to the attached stage, whose ``taken``
        column names the kept shard owning each name (``ListingStage.take_names`` and
        ``take_matching``). Call ``copy_directories_from_stage`` first.

        * a ledger file no longer listed (or now owned by another kept shard) is *gone*: its
          row leaves the ledger (and its children's members), so no total counts it, and it
          can never be called imported;
        * a ledger file with a new generation is *replaced*: flagged ``changed``, ``pending``;
        * a name the shard owns that its ledger lacks is *added*: a new ``pending`` row.

        Each kept shard's expected objects and bytes become its ledger's (its counters follow
        in ``recount_kept``, once children are made); an event says what changed.
        their gone members; one left with nothing to import is settled as done. Nothing is
        imported yet: see ``files_to_import`` and ``add_child``.
        """
        conn = self.conn
        conn.execute("DROP TABLE IF EXISTS temp.replan")
        conn.execute(
            "CREATE TEMP TABLE replan (shard_id INTEGER NOT NULL, directory_id INTEGER NOT NULL,"
            " name TEXT NOT NULL, kind TEXT NOT NULL, outcome TEXT, size INTEGER,"
            " generation INTEGER, PRIMARY KEY (shard_id, directory_id, name)) WITHOUT ROWID"
        )
        kept_rows = (
            "FROM objects AS o JOIN shards AS s ON s.id = o.shard_id AND s.parent_id IS NULL"
            " JOIN directories AS d ON d.id = o.directory_id"
        )
        conn.execute(
            "INSERT INTO temp.replan SELECT o.shard_id, o.directory_id, o.name, 'gone',"
            f" o.outcome, o.size, o.generation {kept_rows} WHERE NOT EXISTS (SELECT 1 FROM"
            " stage.listing AS l WHERE l.name = d.path || o.name AND l.taken = o.shard_id)"
        )
        conn.execute(
            "INSERT INTO temp.replan SELECT o.shard_id, o.directory_id, o.name, 'replaced',"
            f" o.outcome, l.size, l.generation {kept_rows} JOIN stage.listing AS l"
            " ON l.name = d.path || o.name AND l.taken = o.shard_id"
            " WHERE l.generation != o.generation"
        )
        conn.execute(
            "INSERT INTO temp.replan SELECT l.taken, l.directory_id + ?, substr(l.name, l.cut + 1),"
            " 'added', NULL, l.size, l.generation FROM stage.listing AS l"
            " JOIN shards AS s ON s.id = l.taken AND s.parent_id IS NULL"
            " WHERE l.taken > 0 AND NOT EXISTS (SELECT 1 FROM objects AS o"
            " JOIN directories AS d ON d.id = o.directory_id WHERE o.shard_id = l.taken"
            " AND d.path = substr(l.name, 1, l.cut) AND o.name = substr(l.name, l.cut + 1))",
            (self.directory_offset,),
        )
        per_shard = conn.execute(
            "SELECT shard_id, sum(kind = 'added'), sum(kind = 'replaced'), sum(kind = 'gone')"
            " FROM temp.replan GROUP BY shard_id ORDER BY shard_id"
        ).fetchall()
        gone_keys = "(SELECT shard_id, directory_id, name FROM temp.replan WHERE kind = 'gone')"
        conn.execute(f"DELETE FROM members WHERE (home_id, directory_id, name) IN {gone_keys}")
        conn.execute(f"DELETE FROM objects WHERE (shard_id, directory_id, name) IN {gone_keys}")
        conn.execute(
            "UPDATE objects SET size = r.size, generation = r.generation, changed = 1,"
            " outcome = 'pending', error_code = NULL, error_message = NULL FROM temp.replan AS r"
            " WHERE r.kind = 'replaced' AND objects.shard_id = r.shard_id"
            " AND objects.directory_id = r.directory_id AND objects.name = r.name"
        )
        conn.execute(
            "INSERT INTO objects (shard_id, directory_id, name, size, generation)"
            " SELECT shard_id, directory_id, name, size, generation FROM temp.replan"
            " WHERE kind = 'added'"
        )
        added = replaced = gone = 0
        at = datetime.now(UTC).timestamp()
        for shard_id, n_added, n_replaced, n_gone in per_shard:
            added, replaced, gone = added + n_added, replaced + n_replaced, gone + n_gone
            objects, nbytes = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM objects WHERE shard_id = ?",
                (shard_id,),
            ).fetchone()
            conn.execute(
                "UPDATE shards SET objects = ?, bytes = ? WHERE id = ?",
                (objects, nbytes, shard_id),
            )
            self._affected.append(shard_id)
            conn.execute(
                "INSERT INTO events (at, shard_id, kind, detail) VALUES (?, ?, 'replan', ?)",
                (
                    at,
                    shard_id,
                    f"the bucket changed since it ran: {n_added} file(s) added under its URI,"
                    f" {n_replaced} replaced (new generation), {n_gone} gone",
                ),
            )
        # An operation that counted other files than planned ran on a bucket that changed:
        # its shard's ledger is the bucket's again (the ``drift`` event keeps that it was).
        conn.execute("UPDATE shards SET drift = 0 WHERE parent_id IS NULL AND drift != 0")
        self._recount_pending_children()
        self._settle_empty(at)
        return KeptChanges(added, replaced, gone)

    def recount_kept(self) -> None:
        """The counters of each kept shard whose files changed count its files' outcomes (as
        a settled shard's do, see ``FileLedger``): its imported files as successes, failed and
        unknown ones as failures; a file waiting for a child is counted when that child
        settles. The files that left are counted nowhere; its operations keep what they
        reported."""
        for shard_id in self._affected:
            self.conn.execute(
                "UPDATE shards SET"
                " success = (SELECT count(*) FROM objects WHERE shard_id = :h"
                " AND outcome = 'imported'),"
                " failure = (SELECT count(*) FROM objects WHERE shard_id = :h"
                " AND outcome IN ('failed', 'unknown')) WHERE id = :h AND state != 'pending'",
                {"h": shard_id},
            )

    def files_to_import(self) -> list[KeptFile]:
        """The added and replaced files of kept shards whose operations ended (a kept shard
        still pending imports all its files when it runs), by shard and name."""
        rows = self.conn.execute(
            "SELECT r.shard_id, r.directory_id, r.name, d.path || r.name, r.size"
            " FROM temp.replan AS r JOIN shards AS s ON s.id = r.shard_id"
            " JOIN directories AS d ON d.id = r.directory_id"
            " WHERE r.kind != 'gone' AND s.state IN ('done', 'failed') ORDER BY 1, 4"
        )
        return [KeptFile(*row) for row in rows]

    def shard_uri(self, shard_id: int) -> str:
        return str(
            self.conn.execute("SELECT uri FROM shards WHERE id = ?", (shard_id,)).fetchone()[0]
        )

    def kept_ledger(self, shard_id: int) -> list[tuple[int, str, str, int, int, str]]:
        """A kept shard's ledger: ``(directory id, file, full name, size, generation,
        outcome)`` in name order."""
        rows = self.conn.execute(
            "SELECT o.directory_id, o.name, d.path || o.name, o.size, o.generation, o.outcome"
            " FROM objects AS o JOIN directories AS d ON d.id = o.directory_id"
            " WHERE o.shard_id = ? ORDER BY 3",
            (shard_id,),
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def drop_pending_children(self, shard_id: int) -> list[tuple[str, list[KeptFile]]]:
        """Remove the kept shard's child shards that have not started (they never ran: no
        operation, no outcome); returns each one's purpose and files, to be cut again over the
        shard's ledger as it is now (their URIs may match files added since they were made)."""
        dropped: list[tuple[str, list[KeptFile]]] = []
        children = self.conn.execute(
            "SELECT id, purpose FROM shards WHERE parent_id = ? AND state = 'pending'"
            " AND attempts = 0 ORDER BY id",
            (shard_id,),
        ).fetchall()
        for child_id, purpose in children:
            rows = self.conn.execute(
                "SELECT m.home_id, m.directory_id, m.name, d.path || m.name, o.size"
                " FROM members AS m JOIN objects AS o ON o.shard_id = m.home_id"
                " AND o.directory_id = m.directory_id AND o.name = m.name"
                " JOIN directories AS d ON d.id = m.directory_id WHERE m.shard_id = ?"
                " ORDER BY 4",
                (child_id,),
            )
            dropped.append((str(purpose), [KeptFile(*row) for row in rows]))
            self.conn.execute("DELETE FROM members WHERE shard_id = ?", (child_id,))
            self.conn.execute("DELETE FROM shards WHERE id = ?", (child_id,))
            self._event(child_id, "dropped: its shard's files changed in the bucket; cut again")
        return dropped

    def add_child(
        self,
        parent_id: int,
        uri: str,
        prefix: str,
        files: list[KeptFile],
        purpose: str = "replan",
    ) -> int:
        """A new pending child shard of a kept shard importing ``files`` (rows of its ledger);
        returns its id. Purpose ``replan``: files added or replaced since the shard ran."""
        child_id = self.next_id
        self.next_id += 1
        self.conn.execute(
            "INSERT INTO shards (id, plan_id, uri, prefix, objects, bytes, state, updated_at,"
            " parent_id, purpose) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (
                child_id,
                self.plan_id,
                uri,
                prefix,
                len(files),
                sum(f.size for f in files),
                now(),
                parent_id,
                purpose,
            ),
        )
        self.conn.executemany(
            "INSERT INTO members (shard_id, home_id, directory_id, name) VALUES (?, ?, ?, ?)",
            [(child_id, f.home_id, f.directory_id, f.file) for f in files],
        )
        what = "added or replaced since it ran" if purpose == "replan" else f"to {purpose}"
        self._event(child_id, f"{len(files)} file(s) of shard {parent_id} {what}: {uri}")
        return child_id

    def _event(self, shard_id: int, detail: str) -> None:
        self.conn.execute(
            "INSERT INTO events (at, shard_id, kind, detail) VALUES (?, ?, 'replan', ?)",
            (datetime.now(UTC).timestamp(), shard_id, detail),
        )

    def _recount_pending_children(self) -> None:
        self.conn.execute(
            "UPDATE shards SET objects = (SELECT count(*) FROM members WHERE shard_id = shards.id),"
            " bytes = (SELECT coalesce(sum(o.size), 0) FROM members AS m JOIN objects AS o"
            " ON o.shard_id = m.home_id AND o.directory_id = m.directory_id AND o.name = m.name"
            " WHERE m.shard_id = shards.id) WHERE parent_id IS NOT NULL AND state = 'pending'"
        )

    def _settle_empty(self, at: float) -> None:
        """A kept shard still to run whose files all left the bucket has nothing to import:
        done, settled (its URI would match nothing, which the API calls an error)."""
        ids = [
            int(r[0])
            for r in self.conn.execute(
                "SELECT id FROM shards WHERE state = 'pending' AND objects = 0"
            )
        ]
        for shard_id in ids:
            self.conn.execute(
                "UPDATE shards SET state = 'done', files = 'settled', updated_at = ? WHERE id = ?",
                (now(), shard_id),
            )
            self.conn.execute(
                "INSERT INTO events (at, shard_id, kind, detail) VALUES (?, ?, 'replan', ?)",
                (at, shard_id, "every file it was to import left the bucket: nothing to run"),
            )

    def _finish(self) -> None:
        if self._copied:
            # Directories of the stage that no ledger row uses (their names all kept, or gone).
            self.conn.execute(
                "DELETE FROM directories WHERE id > ? AND id NOT IN"
                " (SELECT DISTINCT directory_id FROM objects WHERE directory_id > ?)",
                (self.directory_offset, self.directory_offset),
            )
        self.conn.execute(
            "UPDATE plans SET new_shards = ?, unplanned_objects = ?, seconds = ? WHERE id = ?",
            (self.new_shards, self.unplanned, self.seconds, self.plan_id),
        )


_PLAN_COLUMNS = (
    "id, created_at, source, max_objects_per_shard, max_bytes_per_shard, listed_objects,"
    " matched_objects, matched_bytes, kept_shards, new_shards, unplanned_objects, list_seconds,"
    " seconds"
)
_SHARD_COLUMNS = "id, uri, objects, bytes, state, prefix, plan_id"


def _shard(row: tuple[int, str, int, int, str, str, int]) -> Shard:
    shard_id, uri, objects, nbytes, state, prefix, plan_id = row
    return Shard(shard_id, uri, objects, nbytes, ShardState(state), prefix, plan_id)


def _newer(path: Path, version: int) -> StateError:
    """A state file from a newer bulkmover: never migrated down, never replaced."""
    return StateError(
        f"state file {path} was written by a newer bulkmover (schema {version}, this one knows"
        f" {SCHEMA_VERSION}): upgrade bulkmover to use it"
    )


def _statements(script: str) -> list[str]:
    """Split a migration into statements (they hold no ';' inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
