"""The state file's schema, as numbered migrations (``PRAGMA user_version`` is the version).

To change the schema, append a migration; never edit one that has shipped: state files written
by an older bulkmover are upgraded in order when opened. The executor adds its tables (attempts,
operations, events) as migration 2 onwards.

Layout (version 1):

* ``plans``: one row per planning run (``plan``, ``plan --replan``): the source, the limits, what
  the listing saw, how long it took.
* ``shards``: one import operation each: its URI, literal ``prefix``, expected objects and bytes,
  and ``state`` (``pending`` until the executor runs it). Ids are small integers.
* ``objects``: the per-file ledger, every matched object of every shard, in a ``WITHOUT ROWID``
  table keyed by ``(shard_id, directory_id, name)``: the directory part of the object name is
  stored once in ``directories`` and a row holds only the file name, size and generation (PACS
  exports repeat long study/series UID paths for every file: this halves the ledger). Each plan
  run adds its own directory rows (a path may appear twice across runs).
* ``unplanned``: matched objects that no shard covers (names no import URI can single out,
  planned with ``import.unaddressable: skip``), with the reason.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: plans, shards, the object ledger, unplanned objects.
    """
    CREATE TABLE plans (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        max_objects_per_shard INTEGER NOT NULL,
        max_bytes_per_shard INTEGER NOT NULL,
        listed_objects INTEGER NOT NULL,
        matched_objects INTEGER NOT NULL,
        matched_bytes INTEGER NOT NULL,
        kept_shards INTEGER NOT NULL,
        new_shards INTEGER NOT NULL,
        unplanned_objects INTEGER NOT NULL,
        list_seconds REAL NOT NULL,
        seconds REAL NOT NULL
    );
    CREATE TABLE shards (
        id INTEGER PRIMARY KEY,
        plan_id INTEGER NOT NULL REFERENCES plans(id),
        uri TEXT NOT NULL,
        prefix TEXT NOT NULL,
        objects INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        updated_at TEXT NOT NULL
    );
    CREATE INDEX shards_by_state ON shards(state);
    CREATE TABLE directories (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL
    );
    CREATE TABLE objects (
        shard_id INTEGER NOT NULL,
        directory_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (shard_id, directory_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE unplanned (
        name TEXT NOT NULL PRIMARY KEY,
        size INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        plan_id INTEGER NOT NULL REFERENCES plans(id),
        reason TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: the executor's run state (see bulkmover.state.runs): per shard its current operation,
    # attempts, counters and error; every operation ever started; an event log. A shard that is
    # ``running`` with no operation yet is one whose import POST was in flight.
    """
    ALTER TABLE shards ADD COLUMN operation TEXT;
    ALTER TABLE shards ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN not_before REAL NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN submitted_at REAL;
    ALTER TABLE shards ADD COLUMN ended_at REAL;
    ALTER TABLE shards ADD COLUMN success INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN failure INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN error TEXT;
    ALTER TABLE shards ADD COLUMN drift INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX shards_pending ON shards(state, not_before, id);
    CREATE TABLE operations (
        name TEXT PRIMARY KEY,
        shard_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        done INTEGER NOT NULL DEFAULT 0,
        success INTEGER NOT NULL DEFAULT 0,
        failure INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX operations_by_shard ON operations(shard_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        shard_id INTEGER,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 3: a start whose answer was lost keeps the window its operation may have been created in
    # (last attempt sent .. failure seen), so a resumed run matches it as tightly as this one;
    # an operation keeps when its start was claimed, which with ``started_at`` (its answer)
    # brackets its createTime and so measures the server's clock against ours.
    """
    ALTER TABLE shards ADD COLUMN start_sent_at REAL;
    ALTER TABLE shards ADD COLUMN start_lost_at REAL;
    ALTER TABLE operations ADD COLUMN sent_at REAL;
    """,
    # 4: every file's outcome (see bulkmover.state.files). A ledger row says ``pending``,
    # ``imported``, ``failed`` (with the API's code and message) or ``unknown`` (with why), and
    # whether its generation changed since planning. A shard that ended gets its files settled:
    # ``files`` is NULL until its operation ends, then ``checking`` (its counts differ from the
    # plan: which files changed in the bucket), ``collecting`` (its failures are read
    # from Cloud Logging), ``narrowing`` (its logged failures do not account for its failure
    # counter: child shards or STOW-RS find the rest) and ``settled``. Child shards (``parent_id``,
    # ``purpose`` resolve or retry) import some files of planned shards again; ``members`` lists
    # their files by their ledger rows (``home_id`` is the planned shard). ``meta`` keeps facts
    # about the whole file, such as the DICOM store its runs import into (``target_store``).
    """
    ALTER TABLE objects ADD COLUMN outcome TEXT NOT NULL DEFAULT 'pending';
    ALTER TABLE objects ADD COLUMN error_code INTEGER;
    ALTER TABLE objects ADD COLUMN error_message TEXT;
    ALTER TABLE objects ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX objects_by_outcome ON objects(outcome) WHERE outcome != 'imported';
    CREATE INDEX directories_by_path ON directories(path);
    ALTER TABLE shards ADD COLUMN parent_id INTEGER;
    ALTER TABLE shards ADD COLUMN purpose TEXT NOT NULL DEFAULT 'plan';
    ALTER TABLE shards ADD COLUMN files TEXT;
    ALTER TABLE shards ADD COLUMN logged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN log_first_read_at REAL;
    ALTER TABLE shards ADD COLUMN log_grew_at REAL;
    ALTER TABLE shards ADD COLUMN log_next_read_at REAL NOT NULL DEFAULT 0;
    CREATE INDEX shards_by_files ON shards(files) WHERE files IS NOT NULL AND files != 'settled';
    CREATE TABLE members (
        shard_id INTEGER NOT NULL,
        home_id INTEGER NOT NULL,
        directory_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (shard_id, home_id, directory_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
