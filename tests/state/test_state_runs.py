"""Property test of the executor's shard transitions: any sequence, crash anywhere, stays sane.

A hypothesis state machine drives RunLedger on a real state file with claims, answered POSTs,
finishes (done, failed, requeued), live progress and crashes (the connection dropped and the
file reopened, then ``recover_interrupted`` as ``run`` does on start), and checks after every step
that the file agrees with a simple model: one state per shard, operation names kept, a running
shard with a committed name never sent back to the queue, totals equal to the rows' sums.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bulkmover.state import PlanDraft, ShardState, StateStore

SHARDS = 5


class ShardLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "state.db"
        store = StateStore.open(self.path)
        with store.writing_plan(PlanDraft("gs://bkt/a/**", 10, 10**9, 50, 50, 500, 0.0)) as plan:
            for i in range(SHARDS):
                plan.add_shard(f"gs://bkt/a/{i}/**", f"a/{i}/", 10, 100)
        self.store = store
        self.ledger = store.runs
        # The model: state and committed operation name per shard, and every name ever started.
        self.state = {i: ShardState.PENDING for i in range(1, SHARDS + 1)}
        self.operation: dict[int, str | None] = {i: None for i in self.state}
        self.started: dict[str, int] = {}
        self.counter = 0

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def _in(self, state: ShardState, named: bool | None = None) -> list[int]:
        return [
            i
            for i, s in self.state.items()
            if s == state and (named is None or (self.operation[i] is not None) == named)
        ]

    @precondition(lambda self: self._in(ShardState.PENDING))
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        shard = data.draw(st.sampled_from(self._in(ShardState.PENDING)))
        self.ledger.claim(shard)
        self.state[shard], self.operation[shard] = ShardState.RUNNING, None

    @precondition(lambda self: self._in(ShardState.RUNNING, named=False))
    @rule(data=st.data())
    def post_answered(self, data: st.DataObject) -> None:
        shard = data.draw(st.sampled_from(self._in(ShardState.RUNNING, named=False)))
        self.counter += 1
        name = f"projects/p/locations/l/datasets/d/operations/{self.counter}"
        self.ledger.mark_running(shard, name)
        self.operation[shard] = name
        self.started[name] = shard

    @precondition(lambda self: self._in(ShardState.RUNNING, named=True))
    @rule(data=st.data(), ok=st.integers(0, 10), bad=st.integers(0, 3))
    def progress(self, data: st.DataObject, ok: int, bad: int) -> None:
        shard = data.draw(st.sampled_from(self._in(ShardState.RUNNING, named=True)))
        name = self.operation[shard]
        assert name is not None
        self.ledger.record_progress([(name, ok, bad)])

    @precondition(lambda self: self._in(ShardState.RUNNING, named=True))
    @rule(
        data=st.data(),
        outcome=st.sampled_from([ShardState.DONE, ShardState.FAILED, ShardState.PENDING]),
    )
    def finish(self, data: st.DataObject, outcome: ShardState) -> None:
        shard = data.draw(st.sampled_from(self._in(ShardState.RUNNING, named=True)))
        name = self.operation[shard]
        assert name is not None
        self.ledger.mark_finished(
            shard, name, success=9, failure=1, error=None if outcome == ShardState.DONE else "x",
            state=outcome, retry_at=0.0 if outcome == ShardState.PENDING else None,
        )  # fmt: skip
        self.state[shard] = outcome

    @precondition(lambda self: self._in(ShardState.RUNNING, named=False))
    @rule(data=st.data())
    def start_refused(self, data: st.DataObject) -> None:
        shard = data.draw(st.sampled_from(self._in(ShardState.RUNNING, named=False)))
        self.ledger.requeue(shard, 0.0, "429")
        self.state[shard] = ShardState.PENDING

    @rule()
    def crash_and_resume(self) -> None:
        """kill -9 between any two commits: reopen the file and recover as `run` does."""
        self.store.conn.close()
        self.store = StateStore.open(self.path)
        self.ledger = self.store.runs
        running = self.ledger.recover_interrupted()
        for shard in self._in(ShardState.RUNNING, named=False):
            self.state[shard] = ShardState.PENDING  # POST in flight: resubmit (import is safe)
        assert sorted(r.shard_id for r in running) == self._in(ShardState.RUNNING, named=True)

    @rule()
    def retry_failed(self) -> None:
        self.ledger.retry_failed()
        for shard, state in self.state.items():
            if state == ShardState.FAILED or state == ShardState.DONE:
                self.state[shard] = ShardState.PENDING  # done shards here all have failure=1
                self.operation[shard] = None

    @invariant()
    def file_agrees_with_model(self) -> None:
        rows = {r.shard_id: r for r in self.ledger.iter_shards()}
        assert {i: r.state for i, r in rows.items()} == self.state
        for shard, state in self.state.items():
            if state == ShardState.RUNNING:
                assert rows[shard].operation == self.operation[shard]
        names = {
            row[0]: row[1]
            for row in self.store.conn.execute("SELECT name, shard_id FROM operations")
        }
        assert names == self.started  # every started operation is kept, with its shard
        t = self.ledger.totals()
        assert t.shards == SHARDS
        assert t.done + t.failed + t.running + t.pending == SHARDS
        assert t.success == sum(r.success for r in rows.values())
        check = sqlite3.connect(self.path).execute("PRAGMA integrity_check").fetchone()[0]
        assert check == "ok"


ShardLifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_shard_lifecycle = ShardLifecycle.TestCase
