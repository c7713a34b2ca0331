"""Per-file outcomes on a real state file: how each shard transition settles its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkmover.errors import StateError
from bulkmover.state.files import FileError, FileOutcome, FilesState, Purpose
from bulkmover.state.store import PlanDraft, ShardState, StateStore

FILES = {1: ["a/1/x.dcm", "a/1/y.dcm", "a/1/z.dcm"], 2: ["a/2/p.dcm", "a/2/q.dcm"]}


def planned(path: Path) -> StateStore:
    store = StateStore.open(path)
    with store.writing_plan(PlanDraft("gs://bkt/a/**", 10, 10**9, 5, 5, 50, 0.0)) as plan:
        for shard, names in FILES.items():
            shard_id = plan.add_shard(f"gs://bkt/a/{shard}/**", f"a/{shard}/", len(names), 30)
            plan.add_objects(shard_id, [(n, 10, 7) for n in names])
    return store


def outcomes(store: StateStore) -> dict[str, tuple[str, int | None, str | None]]:
    rows = store.conn.execute(
        "SELECT d.path || o.name, o.outcome, o.error_code, o.error_message FROM objects o"
        " JOIN directories d ON d.id = o.directory_id"
    )
    return {name: (outcome, code, message) for name, outcome, code, message in rows}


def finish(store: StateStore, shard: int, *, success: int, failure: int) -> None:
    store.runs.claim(shard)
    store.runs.mark_running(shard, f"operations/{shard}")
    store.runs.mark_finished(
        shard, f"operations/{shard}", success=success, failure=failure, error=None,
        state=ShardState.DONE,
    )  # fmt: skip


def test_a_shard_with_no_failure_imports_every_file(tmp_path: Path) -> None:
    with planned(tmp_path / "s.db") as store:
        finish(store, 2, success=2, failure=0)
        assert {n: o[0] for n, o in outcomes(store).items() if n.startswith("a/2/")} == {
            "a/2/p.dcm": "imported", "a/2/q.dcm": "imported"
        }  # fmt: skip
        assert store.runs.files.totals().as_dict() == {
            "imported": 2, "failed": 0, "unknown": 0, "pending": 3
        }  # fmt: skip


def test_logged_failures_then_the_rest_imported(tmp_path: Path) -> None:
    with planned(tmp_path / "s.db") as store:
        files = store.runs.files
        finish(store, 1, success=2, failure=1)
        [shard] = files.settling()
        assert shard.files == FilesState.COLLECTING and shard.operation_id == "1"
        logged = files.record_failures(
            1, [FileError("a/1/y.dcm", 3, "empty DICOM instance found"),
                FileError("a/2/p.dcm", 3, "not a file of this shard")], at=5.0,
        )  # fmt: skip
        assert logged == 1
        files.settle(1, FileOutcome.IMPORTED)
        found = outcomes(store)
        assert found["a/1/y.dcm"] == ("failed", 3, "empty DICOM instance found")
        assert found["a/1/x.dcm"][0] == found["a/1/z.dcm"][0] == "imported"
        assert found["a/2/p.dcm"][0] == "pending"
        assert files.settling() == []


def test_a_child_settles_the_planned_rows_and_retry_reopens_them(tmp_path: Path) -> None:
    with planned(tmp_path / "s.db") as store:
        files = store.runs.files
        finish(store, 1, success=1, failure=2)
        files.start_narrowing(1, "capped")
        x, y, z = files.members(1)
        [child] = files.add_children(1, Purpose.RESOLVE, [("gs://bkt/a/1/[yz]", "a/1/", [y, z])])
        assert [r.name for r in files.members(child)] == ["a/1/y.dcm", "a/1/z.dcm"]
        finish(store, child, success=0, failure=2)
        files.record_failures(
            child, [FileError("a/1/y.dcm", 3, "bad"), FileError("a/1/z.dcm", 9, "worse")], 1.0
        )
        files.settle(child, FileOutcome.IMPORTED)
        assert outcomes(store)["a/1/z.dcm"] == ("failed", 9, "worse")
        # Child shards are not part of the plan's totals.
        assert store.totals().shards == 2 and store.runs.totals().shards == 2
        # A file-level retry makes exactly the retried files pending again.
        [retry] = files.add_children(1, Purpose.RETRY, [("gs://bkt/a/1/z.dcm", "a/1/z.dcm", [z])])
        assert outcomes(store)["a/1/z.dcm"] == ("pending", None, None)
        assert outcomes(store)["a/1/y.dcm"][0] == "failed"
        finish(store, retry, success=1, failure=0)
        assert outcomes(store)["a/1/z.dcm"] == ("imported", None, None)
        assert [r.name for r in files.failed_files()] == ["a/1/y.dcm"]
        assert [r.name for r in files.failed_files(9)] == []


def test_a_refused_start_fails_its_files_and_retry_reopens_the_shard(tmp_path: Path) -> None:
    with planned(tmp_path / "s.db") as store:
        store.runs.claim(2)
        store.runs.mark_failed(2, "import rejected as invalid", 3)
        assert outcomes(store)["a/2/q.dcm"] == ("failed", 3, "import rejected as invalid")
        assert store.runs.retry_failed(error_code=5) == 0  # no file failed with 5
        assert store.runs.retry_failed(error_code=3) == 1
        assert outcomes(store)["a/2/q.dcm"] == ("pending", None, None)
        assert [s.shard_id for s in store.runs.next_pending(now=1e12)] == [1, 2]


def test_the_shards_own_log_overrules_a_probe_and_is_never_read_once_settled(
    tmp_path: Path,
) -> None:
    with planned(tmp_path / "s.db") as store:
        files = store.runs.files
        finish(store, 1, success=2, failure=1)
        x, y, _ = files.members(1)
        # A probe found both instances in the store (y's a damaged copy of a stored one) ...
        files.mark_files([x, y], FileOutcome.IMPORTED)
        # ... the operation's own log says y failed: the log wins.
        assert files.record_failures(1, [FileError("a/1/y.dcm", 3, "truncated")], 2.0) == 1
        assert outcomes(store)["a/1/y.dcm"] == ("failed", 3, "truncated")
        files.settle(1, FileOutcome.IMPORTED)
        assert [s.shard_id for s in files.settling()] == []  # settled: its log is read no more


def test_a_state_file_belongs_to_one_store(tmp_path: Path) -> None:
    with planned(tmp_path / "s.db") as store:
        store.check_target("projects/p/locations/l/datasets/d/dicomStores/s", record=True)
        store.check_target("projects/p/locations/l/datasets/d/dicomStores/s")
        with pytest.raises(StateError, match="belongs to DICOM store"):
            store.check_target("projects/p/locations/l/datasets/d/dicomStores/other")
