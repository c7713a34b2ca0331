"""``bulkmover status``: the board rebuilt from the state file, read-only.

Safe beside a running ``run``: it opens the state file read-only (``StateStore.open_readonly``;
WAL readers never block the writer) and reads only aggregates and the running shards, so it
answers fast on 100,000 shards.
"""

from __future__ import annotations

import json
import time

from bulkmover.board.model import InFlight, Snapshot
from bulkmover.execution.patience import API_EVENTS
from bulkmover.state.coverage import read_coverage
from bulkmover.state.files import OutcomeTotals
from bulkmover.state.store import ShardState, StateStore
from bulkmover.units import format_duration


def snapshot(store: StateStore) -> Snapshot:
    """One board frame from the state file."""
    ledger = store.runs
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
        files=_files(store),
        settling=ledger.files.settling_count() if _has_outcomes(store) else 0,
        trouble=_trouble(store, now),
        coverage=read_coverage(store.conn),
    )


def _trouble(store: StateStore, now: float) -> str | None:
    """What the run last said about its API calls: failing since when, or that it gave up."""
    last = store.runs.recent_events(1, kinds=API_EVENTS)
    if not last or last[-1].kind == "api-ok":
        return None
    event = last[-1]
    when = time.strftime("%H:%M:%S", time.localtime(event.at))
    if event.kind == "gave-up":
        return f"the run gave up at {when}: {event.detail}"
    return f"API calls failing since {when} ({format_duration(now - event.at)} ago): {event.detail}"


def _has_outcomes(store: StateStore) -> bool:
    """Whether the file has per-file outcomes (schema 4; ``status`` never migrates a file)."""
    return store.schema_version >= 4


def _files(store: StateStore) -> OutcomeTotals | None:
    return store.runs.files.totals() if _has_outcomes(store) else None


def status_json(store: StateStore) -> str:
    """The documented ``status --json`` document: totals and one entry per shard.

    SQLite renders the per-shard array itself (json_object), so 100,000 shards cost a fraction
    of a second instead of building 100,000 Python dicts.
    """
    totals = store.runs.totals().as_dict()
    files = _files(store)
    shards = store.conn.execute(
        """SELECT COALESCE(json_group_array(json_object(
               'id', id, 'uri', uri, 'state', state, 'operation', operation,
               'success', success, 'failure', failure, 'expected', objects,
               'attempts', attempts,
               'drift', CASE WHEN drift THEN json('true') ELSE json('false') END,
               'error', error)), '[]')
           FROM (SELECT * FROM shards ORDER BY id)"""
    ).fetchone()[0]
    head = '{"totals": ' + json.dumps(totals)
    if files is not None:
        head += ', "files": ' + json.dumps(files.as_dict())
    head += ', "coverage": ' + json.dumps(read_coverage(store.conn).as_dict())
    return head + ', "shards": ' + str(shards) + "}"
