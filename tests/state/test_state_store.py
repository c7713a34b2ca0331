"""The state file: schema, typed records, one-transaction plans, replans that keep what ran."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bulkmover.errors import StateError
from bulkmover.gcs.listing import ListedObject
from bulkmover.state import ListingStage, PlanDraft, ShardState, StateStore, transaction
from bulkmover.state.schema import SCHEMA_VERSION
from bulkmover.state.staging import prefix_end

DRAFT = PlanDraft("gs://b0b/a/**.dcm", 10, 1000, 7, 5, 50, 0.5)


def write_plan(store: StateStore, shards: dict[str, list[tuple[str, int, int]]]) -> list[int]:
    ids = []
    with store.writing_plan(DRAFT) as writer:
        for uri, rows in shards.items():
            prefix = uri.split("/", 3)[3].split("*")[0]
            shard_id = writer.add_shard(uri, prefix, len(rows), sum(r[1] for r in rows))
            writer.add_objects(shard_id, rows)
            ids.append(shard_id)
        writer.seconds = 1.5
    return ids


def finish(store: StateStore, shard_id: int, state: ShardState) -> None:
    """Run a shard to ``state`` the way the executor does: claim, POST answered, finished."""
    store.runs.claim(shard_id)
    store.runs.mark_running(shard_id, f"operations/{shard_id}")
    store.runs.mark_finished(
        shard_id, f"operations/{shard_id}", success=1, failure=0, error=None, state=state
    )


PLAN = {
    "gs://b0b/a/x/**.dcm": [("a/x/1.dcm", 10, 111), ("a/x/y/2.dcm", 20, 222)],
    "gs://b0b/a/*.dcm": [("a/3.dcm", 30, 333)],
    "gs://b0b/a/z.dcm": [("a/z.dcm", 40, 444)],
}


def test_new_state_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.db"
    with StateStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.latest_plan() is None
        assert list(store.shards()) == []
    with StateStore.open(path, create=False) as store:  # reopens without migrating again
        assert store.schema_version == SCHEMA_VERSION


def test_plan_round_trip(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        ids = write_plan(store, PLAN)
        assert ids == [1, 2, 3]
        shards = list(store.shards())
        assert [(s.id, s.uri, s.objects, s.bytes, s.state) for s in shards] == [
            (1, "gs://b0b/a/x/**.dcm", 2, 30, ShardState.PENDING),
            (2, "gs://b0b/a/*.dcm", 1, 30, ShardState.PENDING),
            (3, "gs://b0b/a/z.dcm", 1, 40, ShardState.PENDING),
        ]
        assert [(o.name, o.size, o.generation) for o in store.ledger(1)] == PLAN[
            "gs://b0b/a/x/**.dcm"
        ]
        assert (store.totals().shards, store.totals().objects, store.totals().bytes) == (3, 4, 100)
        plan = store.latest_plan()
        assert plan is not None
        assert (plan.source, plan.new_shards, plan.kept_shards, plan.seconds) == (
            DRAFT.source,
            3,
            0,
            1.5,
        )
        # Each directory is stored once; a ledger row holds the file name (that keeps it small).
        raw = store.conn.execute(
            "SELECT o.shard_id, d.path, o.name FROM objects AS o"
            " JOIN directories AS d ON d.id = o.directory_id ORDER BY 1, 2, 3"
        ).fetchall()
        assert raw == [
            (1, "a/x/", "1.dcm"),
            (1, "a/x/y/", "2.dcm"),
            (2, "a/", "3.dcm"),
            (3, "a/", "z.dcm"),
        ]


def test_a_failed_plan_writes_nothing(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        write_plan(store, PLAN)
        with pytest.raises(RuntimeError), store.writing_plan(DRAFT) as writer:
            writer.add_shard("gs://b0b/q/**", "q/", 1, 1)
            raise RuntimeError("listing broke")
        assert [s.id for s in store.shards()] == [1, 2, 3]
        assert len(store.plans()) == 1


def test_replan_keeps_shards_that_ran(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        write_plan(store, PLAN)
        finish(store, 1, ShardState.DONE)
        # Shard 3 ran once and was queued again (the executor's requeue): it has run.
        store.runs.claim(3)
        store.runs.requeue(3, 0.0, "429")
        assert store.shards_that_ran() == 2
        assert sorted(store.names_in_shards_that_ran()) == ["a/x/1.dcm", "a/x/y/2.dcm", "a/z.dcm"]
        ids = write_plan(store, {"gs://b0b/a/3*.dcm": [("a/3.dcm", 30, 333)]})
        assert ids == [4]
        assert [(s.id, s.state) for s in store.shards()] == [
            (1, ShardState.DONE),
            (3, ShardState.PENDING),
            (4, ShardState.PENDING),
        ]
        assert [o.name for o in store.ledger(1)] == ["a/x/1.dcm", "a/x/y/2.dcm"]
        assert (
            store.conn.execute("SELECT count(*) FROM objects WHERE shard_id = 2").fetchone()[0] == 0
        )
        latest = store.latest_plan()
        assert latest is not None and (latest.kept_shards, latest.new_shards) == (2, 1)


def test_ledger_copied_from_a_listing_stage(tmp_path: Path) -> None:
    with ListingStage(tmp_path / "s.db.listing") as stage:
        names = ["a/x/1.dcm", "a/x/2.dcm", "a/x/y/3.dcm", "a/4.dcm", "a/q*.dcm", "b/5.dcm"]
        stage.add([(name, i, 100 + i) for i, name in enumerate(names)])
        stage.mark_taken(["b/5.dcm"])
        sealed = stage.seal()
        with StateStore.open(tmp_path / "s.db") as store:
            with store.writing_plan(DRAFT, sealed) as writer:
                writer.copy_directories_from_stage()
                one = writer.add_shard("gs://b0b/a/x/**.dcm", "a/x/", 3, 3)
                assert writer.copy_from_stage(one, "a/x/", "a/x/*.dcm", None) == (3, 3)
                two = writer.add_shard("gs://b0b/a/4*.dcm", "a/4", 1, 3)
                assert writer.copy_from_stage(two, "a/4", "a/4*.dcm", 1) == (1, 3)
                assert writer.taken_in_stage("", "b/*", None) == "b/5.dcm"
                assert writer.taken_in_stage("a/", "a/*", None) is None
                writer.add_unplanned_from_stage(["a/q*.dcm"], "name holds '*'")
            assert [(o.name, o.size, o.generation) for o in store.ledger(one)] == [
                ("a/x/1.dcm", 0, 100),
                ("a/x/2.dcm", 1, 101),
                ("a/x/y/3.dcm", 2, 102),
            ]
            assert [o.name for o in store.ledger(two)] == ["a/4.dcm"]
            assert [(u.name, u.size) for u in store.unplanned()] == [("a/q*.dcm", 4)]
            # The stage is attached only while the plan is written.
            assert [row[1] for row in store.conn.execute("PRAGMA database_list")] == ["main"]


def test_unplanned_rows(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        with store.writing_plan(DRAFT) as writer:
            writer.add_unplanned([("a/x*y.dcm", 5, 9)], "name holds '*'")
        assert [(u.name, u.reason) for u in store.unplanned()] == [("a/x*y.dcm", "name holds '*'")]
        plan = store.latest_plan()
        assert plan is not None and plan.unplanned_objects == 1


def test_shard_lookup(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        write_plan(store, PLAN)
        assert store.shard(2).uri == "gs://b0b/a/*.dcm"
        with pytest.raises(StateError, match="shard 99 is not in"):
            store.shard(99)
        assert [s.id for s in store.shards(ShardState.PENDING)] == [1, 2, 3]


def test_refuses_files_that_are_not_state_files(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="not found; run `bulkmover plan CONFIG` first"):
        StateStore.open(tmp_path / "missing.db", create=False)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StateError, match="is not a bulkmover state file"):
        StateStore.open(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="not a usable bulkmover state file"):
        StateStore.open(garbage)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    StateStore.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="written by a newer bulkmover"):
        StateStore.open(path)


def test_listing_stage(tmp_path: Path) -> None:
    path = tmp_path / "s.db.listing"
    with ListingStage(path) as stage:
        stage.add([ListedObject("a/b/2", 2, 20), ListedObject("a/a", 1, 10)])
        stage.add([ListedObject("a/b/1", 3, 30), ("b", 4, 40)])
        stage.add([ListedObject("a/a", 5, 11)])  # listed again: kept once
        assert stage.count() == (4, 10)  # the first listing of a/a is kept, counted once
        assert [r[0] for r in stage.rows()] == ["a/a", "a/b/1", "a/b/2", "b"]
        assert [r[0] for r in stage.rows("a/b/")] == ["a/b/1", "a/b/2"]
        assert stage.mark_taken(["a/b/1", "zzz"]) == 1
        assert [(r[0], r[3]) for r in stage.rows("a/")] == [
            ("a/a", False),
            ("a/b/1", True),
            ("a/b/2", False),
        ]
        assert list(stage.under("a/b")) == [("a/b/1", 3, 1), ("a/b/2", 2, 0)]
        assert list(stage.files("a/")) == [("a/a", 1, 0)]
        assert list(stage.directories()) == [("", 1, 4, 0), ("a/", 1, 1, 0), ("a/b/", 2, 5, 1)]
        assert path.exists()
    assert not path.exists()


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("a/b", "a/c"),
        ("a/", "a0"),
        ("", None),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert prefix_end(prefix) == end


def test_a_failing_listing_writer_is_reported_not_hung(tmp_path: Path) -> None:
    with ListingStage(tmp_path / "s.db.listing") as stage:
        stage.add([("a/1", 1, 1)])
        stage.add([(None, 1, 1)])  # type: ignore[list-item]  # the writer thread fails on it
        for _ in range(200):  # more pages than the queue holds: add() must never block
            stage.add([("a/2", 1, 1)])
        with pytest.raises(StateError, match="could not write the listing to scratch file"):
            stage.finish()


def test_transaction_commits_rolls_back_and_joins(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        write_plan(store, PLAN)
        conn = store.conn
        with transaction(conn):
            conn.execute("UPDATE shards SET objects = 7 WHERE id = 1")
        assert not conn.in_transaction
        with pytest.raises(RuntimeError), transaction(conn):
            conn.execute("UPDATE shards SET objects = 8 WHERE id = 1")
            raise RuntimeError("crash before the commit")
        assert store.shard(1).objects == 7
        # A transition inside an open transaction joins it: the outer one decides.
        with pytest.raises(RuntimeError), transaction(conn):
            store.runs.claim(2)
            assert conn.in_transaction
            raise RuntimeError("crash before the outer commit")
        assert store.shard(2).state == ShardState.PENDING
        with transaction(conn):
            store.runs.claim(2)
            store.runs.mark_running(2, "operations/2")
        assert store.runs.shards_in(ShardState.RUNNING)[0].operation == "operations/2"


def test_runs_is_the_ledger_on_the_same_connection(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        write_plan(store, PLAN)
        assert store.runs is store.runs and store.runs.conn is store.conn
        finish(store, 2, ShardState.DONE)
        assert [s.state for s in store.shards()] == [
            ShardState.PENDING,
            ShardState.DONE,
            ShardState.PENDING,
        ]
        assert (store.totals().shards, store.runs.totals().done) == (3, 1)


def test_open_readonly_reads_beside_a_writer_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(StateError, match="not found; run `bulkmover plan CONFIG` first"):
        StateStore.open_readonly(path)
    with StateStore.open(path) as writer:
        write_plan(writer, PLAN)
        with StateStore.open_readonly(path) as reader:
            writer.runs.claim(1)  # the writer commits while the reader is open
            assert reader.runs.totals().running == 1
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.runs.claim(2)
            assert writer.shard(2).state == ShardState.PENDING
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(StateError, match="cannot read state file"):
        StateStore.open_readonly(other)


def test_an_empty_state_file_is_refused_never_replaced(tmp_path: Path) -> None:
    empty = tmp_path / "run.db"
    empty.write_bytes(b"")
    with pytest.raises(StateError, match="is empty") as err:
        StateStore.open(empty)
    assert "\n" not in str(err.value) and empty.stat().st_size == 0
