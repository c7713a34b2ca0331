"""Property test of the executor's shard transitions: any sequence, crash anywhere, stays sane.

A hypothesis state machine drives RunLedger on a real state file with claims, answered POSTs,
finishes (done, failed, requeued), live progress and crashes (the connection dropped and the
file reopened, then ``recover_interrupted`` as ``run`` does on start), and checks after every step
that the file agrees with a simple model: one state per shard, operation names kept, a running
shard with a committed name never sent back to the queue, a claimed shard with no name left
running (resolving) until it is adopted or requeued, totals equal to the rows' sums.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bulkmover.state import PlanDraft, Recovered, ShardState, StateStore

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
        self.attempts = dict.fromkeys(self.state, 0)
        self.adopted = 0
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
        self.attempts[shard] += 1

    @precondition(lambda self: self._in(ShardState.RUNNING, named=False))
    @rule(data=st.data())
    def post_answered(self, data: st.DataObject) -> None:
        shard = data.draw(st.sampled_from(self._in(ShardState.RUNNING, named=False)))
        self.counter += 1
        name = f"projects/p/locations/l/datasets/d/operations/{self.counter}"
        self.ledger.mark_running(shard, name)
        self.operation[shard] = name
        self.started[name] = shard

    @precondition(lambda self: self._in(ShardState.RUNNING, named=False))
    @rule(data=st.data())
    def adopt(self, data: st.DataObject) -> None:
        """A resolving shard's lost POST is found to have started an operation."""
        shard = data.draw(st.sampled_from(self._in(ShardState.RUNNING, named=False)))
        self.counter += 1
        name = f"projects/p/locations/l/datasets/d/operations/{self.counter}"
        assert name not in self.ledger.known_operations()
        self.ledger.adopt(shard, name, "found by its source URI")
        self.operation[shard] = name
        self.started[name] = shard
        self.adopted += 1

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
        recovered = self.ledger.recover_interrupted()
        assert isinstance(recovered, Recovered)
        # Nothing moves: a nameless claimed shard's POST may have started an import, so it
        # stays running (resolving) until adopted or requeued.
        assert [r.shard_id for r in recovered.running] == self._in(ShardState.RUNNING, named=True)
        assert [r.shard_id for r in recovered.unresolved] == self._in(
            ShardState.RUNNING, named=False
        )
        assert all(r.operation is None for r in recovered.unresolved)
        assert all(r.operation == self.operation[r.shard_id] for r in recovered.running)

    @precondition(lambda self: self._in(ShardState.PENDING))
    @rule(data=st.data())
    def crash_inside_a_transition(self, data: st.DataObject) -> None:
        """kill -9 before a claim's COMMIT: none of it is in the file after recovery."""
        shard = data.draw(st.sampled_from(self._in(ShardState.PENDING)))
        self.store.conn.execute("BEGIN IMMEDIATE")
        self.ledger.claim(shard)  # joins the open transaction, so it does not commit
        self.crash_and_resume()

    @rule()
    def retry_failed(self) -> None:
        # Shards that failed as a whole are queued again whole; done shards with failed files
        # stay done (their files are retried one by one, in new child shards).
        self.ledger.retry_failed()
        for shard, state in self.state.items():
            if state == ShardState.FAILED:
                self.state[shard] = ShardState.PENDING
                self.operation[shard] = None

    @invariant()
    def file_agrees_with_model(self) -> None:
        rows = {r.shard_id: r for r in self.ledger.iter_shards()}
        assert {i: r.state for i, r in rows.items()} == self.state
        for shard, state in self.state.items():
            if state == ShardState.RUNNING:
                assert rows[shard].operation == self.operation[shard]
                assert rows[shard].submitted_at is not None  # the claim opened the window
            assert rows[shard].attempts == self.attempts[shard]
        names = {
            row[0]: row[1]
            for row in self.store.conn.execute("SELECT name, shard_id FROM operations")
        }
        assert names == self.started  # every started operation is kept, with its shard
        assert self.ledger.known_operations() == set(self.started)
        adopted = self.store.conn.execute("SELECT count(*) FROM events WHERE kind='adopted'")
        assert adopted.fetchone()[0] == self.adopted
        t = self.ledger.totals()
        assert t.shards == SHARDS
        assert t.done + t.failed + t.running + t.pending == SHARDS
        assert t.success == sum(r.success for r in rows.values())
        check = sqlite3.connect(self.path).execute("PRAGMA integrity_check").fetchone()[0]
        assert check == "ok"


ShardLifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_shard_lifecycle = ShardLifecycle.TestCase


def planned_store(path: Path, shards: int = 3) -> StateStore:
    store = StateStore.open(path)
    with store.writing_plan(PlanDraft("gs://bkt/a/**", 10, 10**9, 30, 30, 300, 0.0)) as plan:
        for i in range(shards):
            plan.add_shard(f"gs://bkt/a/{i}/**", f"a/{i}/", 10, 100)
    return store


def test_recovery_leaves_nameless_shards_running_to_be_resolved(tmp_path: Path) -> None:
    with planned_store(tmp_path / "s.db") as store:
        runs = store.runs
        before = time.time()
        runs.claim(1)
        runs.mark_running(1, "operations/a")
        runs.claim(2)  # the POST's answer is lost in the crash
        runs.claim(3)
    with StateStore.open(tmp_path / "s.db") as store:
        runs = store.runs
        recovered = runs.recover_interrupted()
        assert [s.shard_id for s in recovered.running] == [1]
        assert recovered.running[0].operation == "operations/a"
        assert [s.shard_id for s in recovered.unresolved] == [2, 3]
        unresolved = recovered.unresolved[0]
        assert unresolved.operation is None and unresolved.state == ShardState.RUNNING
        assert unresolved.submitted_at is not None and unresolved.submitted_at >= before
        assert [(e.kind, e.detail) for e in runs.recent_events()] == [
            ("resume", "2 shard(s) had no operation name yet: resolving")
        ]
        assert runs.known_operations() == {"operations/a"}
        # The executor found shard 2's import and put shard 3 back in the queue.
        runs.adopt(2, "operations/b", "started 1.2 s after the claim, same source URI")
        runs.requeue(3, 0.0, "no operation found for the lost POST")
        assert runs.known_operations() == {"operations/a", "operations/b"}
        assert [(s.shard_id, s.operation) for s in runs.shards_in(ShardState.RUNNING)] == [
            (1, "operations/a"),
            (2, "operations/b"),
        ]
        assert runs.operation_count(2) == 1
        assert [(e.shard_id, e.kind) for e in runs.recent_events()][-2:] == [
            (2, "adopted"),
            (3, "requeued"),
        ]
        assert "operations/b: started 1.2 s" in runs.recent_events(kinds=("adopted",))[0].detail
        # Once resolved, nothing is left to resolve and no event is written.
        again = runs.recover_interrupted()
        assert ([s.shard_id for s in again.running], again.unresolved) == ([1, 2], [])
        assert len(runs.recent_events(kinds=("resume",))) == 1


def test_a_lost_starts_window_survives_a_crash_and_a_new_claim_clears_it(tmp_path: Path) -> None:
    with planned_store(tmp_path / "s.db") as store:
        runs = store.runs
        runs.claim(1)
        claimed = runs.shards_in(ShardState.RUNNING)[0].submitted_at
        runs.mark_start_lost(1, 1000.5, 1001.25, "connection reset after sending")
        runs.claim(2)  # killed with this one in flight: no window end
    with StateStore.open(tmp_path / "s.db") as store:
        runs = store.runs
        lost, in_flight = runs.recover_interrupted().unresolved
        assert lost.lost_window == (1000.5, 1001.25)
        assert in_flight.lost_window == (in_flight.submitted_at, None)
        assert claimed is not None and in_flight.submitted_at is not None
        assert [e.kind for e in runs.recent_events(kinds=("start-lost",))] == ["start-lost"]
        runs.requeue(1, 0.0, "none started")
        runs.claim(1)
        (again,) = [s for s in runs.shards_in(ShardState.RUNNING) if s.shard_id == 1]
        assert (again.start_sent_at, again.start_lost_at) == (None, None)
        assert again.lost_window == (again.submitted_at, None)
