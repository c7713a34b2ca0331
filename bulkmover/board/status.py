"""``bulkmover status``: the board rebuilt from the state file, read-only.

Safe beside a running ``run``: it opens the state file read-only (WAL readers never block the
writer) and reads only aggregates and the running shards, so it answers fast on 100,000 shards.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from bulkmover.board.model import InFlight, Snapshot
from bulkmover.errors import StateError
from bulkmover.state.runs import RunLedger
from bulkmover.state.store import ShardState


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise StateError(f"state file {path} not found; run `bulkmover plan CONFIG` first")
    try:
        # Not mode=ro: a read-only connection cannot build the WAL index (-shm) when a killed
        # run left none, and fails. query_only keeps this connection from ever writing.
        conn = sqlite3.connect(path, timeout=10.0)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("SELECT operation FROM shards LIMIT 0")
    except sqlite3.Error as err:
        raise StateError(
            f"cannot read state file {path} ({err}); was it written by `bulkmover plan`/`run`?"
        ) from None
    return conn


def snapshot(conn: sqlite3.Connection) -> Snapshot:
    """One board frame from the state file."""
    ledger = RunLedger(conn)
    rt = ledger.totals()
    now = time.time()
    running = ledger.shards_in(ShardState.RUNNING)
    finished = rt.shards > 0 and rt.pending == 0 and rt.running == 0
    span = ledger.activity_span()
    elapsed = 0.0 if span is None else (span[1] if finished else now) - span[0]
    processed = rt.success + rt.failure
    events = ledger.recent_events(50)
    return Snapshot(
        totals=rt,
        in_flight=[
            InFlight(
                s.shard_id,
                s.uri,
                s.operation,
                now - (s.submitted_at or now),
                s.success,
                s.failure,
                s.expected,
            )
            for s in running
        ],
        elapsed_seconds=elapsed,
        throughput=processed / elapsed if elapsed > 0 else 0.0,
        limit_changes=[e.detail for e in events if e.kind == "limit"][-3:],
        last_errors=[
            (f"shard {e.shard_id}: " if e.shard_id is not None else "") + e.detail
            for e in events
            if e.kind in ("failed", "requeued")
        ][-5:],
        finished=finished,
    )


def status_json(conn: sqlite3.Connection) -> str:
    """The documented ``status --json`` document: totals and one entry per shard.

    SQLite renders the per-shard array itself (json_object), so 100,000 shards cost a fraction
    of a second instead of building 100,000 Python dicts.
    """
    totals = RunLedger(conn).totals().as_dict()
    shards = conn.execute(
        """SELECT COALESCE(json_group_array(json_object(
               'id', id, 'uri', uri, 'state', state, 'operation', operation,
               'success', success, 'failure', failure, 'expected', objects,
               'attempts', attempts,
               'drift', CASE WHEN drift THEN json('true') ELSE json('false') END,
               'error', error)), '[]')
           FROM (SELECT * FROM shards ORDER BY id)"""
    ).fetchone()[0]
    return '{"totals": ' + json.dumps(totals) + ', "shards": ' + str(shards) + "}"
