"""The board's per-file row: outcomes and shards settling, live and from the state file."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bulkmover.board.model import Snapshot
from bulkmover.board.render import log_fields, render
from bulkmover.board.status import snapshot, status_json
from bulkmover.state.files import OutcomeTotals
from bulkmover.state.runs import RunTotals
from bulkmover.state.store import PlanDraft, ShardState, StateStore


def text(snap: Snapshot) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(render(snap))
    return console.export_text()


def test_the_board_shows_every_outcome_and_the_shards_settling() -> None:
    totals = RunTotals(3, 2, 0, 1, 0, 90, 10, 100, 1000, 800)
    snap = Snapshot(totals, files=OutcomeTotals(85, 4, 1, 10), settling=2)
    board = text(snap)
    assert "85 imported" in board and "4 failed" in board and "1 unknown" in board
    assert "10 pending" in board and "2 shard(s) settling" in board
    fields = log_fields(snap)
    assert fields["files_failed"] == 4 and fields["settling"] == 2
    assert "imported" not in text(Snapshot(totals))  # no per-file row without outcomes


def test_status_reads_the_outcomes_from_the_state_file(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as store:
        with store.writing_plan(PlanDraft("gs://bkt/a/**", 10, 10**9, 3, 3, 30, 0.0)) as plan:
            shard = plan.add_shard("gs://bkt/a/**", "a/", 3, 30)
            plan.add_objects(shard, [(f"a/{i}.dcm", 10, 1) for i in range(3)])
        store.runs.claim(shard)
        store.runs.mark_running(shard, "operations/1")
        store.runs.mark_finished(
            shard, "operations/1", success=2, failure=1, error=None, state=ShardState.DONE
        )
    with StateStore.open_readonly(tmp_path / "s.db") as store:
        snap = snapshot(store)
        assert snap.files == OutcomeTotals(pending=3) and snap.settling == 1
        assert '"files": {"imported": 0, "failed": 0, "unknown": 0, "pending": 3}' in status_json(
            store
        )
