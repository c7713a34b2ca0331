"""The report's rows against real state files: the query plan that keeps memory flat, every
format agreeing with the typed rows, one snapshot per report, totals that always add up, and a
ledger written by the real planner."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from cloudkit import fill_bucket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reportkit import SHARDS, File, bulkmover, plan_state, set_outcomes, write_config

from bulkmover.cli import app
from bulkmover.emulator.processes import RunningServer
from bulkmover.reporting.rows import CSV_COLUMNS, Ledger, explain
from bulkmover.state import StateStore


def test_sorts_one_shard_at_a_time(tmp_path: Path) -> None:
    """The ledger's key gives the shard order; SQLite sorts only within a shard (flat memory
    at a million files), for both selections."""
    state = tmp_path / "s.db"
    plan_state(state, SHARDS)
    with StateStore.open_readonly(state) as store:
        for failed_only in (False, True):
            steps = explain(store.conn, failed_only=failed_only)
            assert "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY" in steps, steps
            assert "USE TEMP B-TREE FOR ORDER BY" not in steps, steps


def test_every_rendering_agrees_with_the_typed_rows(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    plan_state(state, SHARDS)
    with StateStore.open_readonly(state) as store, Ledger(store) as ledger:
        for failed_only in (False, True):
            rows = list(ledger.rows(failed_only=failed_only))
            as_json = [json.loads(t) for t in ledger.json_rows(failed_only=failed_only)]
            assert as_json == [row.as_json() for row in rows]
            lines = "".join(t + "\n" for t in ledger.csv_rows(failed_only=failed_only))
            cells = [["" if c is None else str(c) for c in row] for row in rows]
            assert list(csv.reader(io.StringIO(lines))) == cells
            if failed_only:
                assert {row.outcome for row in rows} == {"failed"}
            widths = ledger.widths(failed_only=failed_only)
            assert widths.rows == len(rows)
            assert widths.uri == max(len(row.uri) for row in rows)
        assert ledger.totals().files == len(list(ledger.rows(failed_only=False)))
        assert list(CSV_COLUMNS) == [
            "uri", "size", "shard", "outcome", "error_code", "error_message", "changed"
        ]  # fmt: skip


def test_a_report_reads_one_snapshot_while_run_writes(tmp_path: Path) -> None:
    """A run that settles files mid-report does not make the totals and the files disagree."""
    state = tmp_path / "s.db"
    plan_state(state, SHARDS)
    with StateStore.open_readonly(state) as reader, Ledger(reader) as ledger:
        before = ledger.totals()
        writer = StateStore.open(state)
        settled = [[File(f.name, f.size, "imported") for f in files] for files in SHARDS]
        set_outcomes(writer.conn, settled)  # committed while the report is open
        rows = list(ledger.rows(failed_only=False))
        assert Counter(row.outcome for row in rows) == {
            k: v for k, v in before.as_dict().items() if v
        }
        assert ledger.totals() == before
        writer.close()
    with StateStore.open_readonly(state) as reader, Ledger(reader) as ledger:
        assert ledger.totals().as_dict() == {
            "imported": 9,
            "failed": 0,
            "unknown": 0,
            "pending": 0,
        }


OUTCOMES = ["imported", "failed", "unknown", "pending"]
# Messages as an API might word them: any text, line breaks and quotes included (not NUL).
MESSAGES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
FILES = st.lists(
    st.tuples(
        st.sampled_from(["", "a/", "a/b/", "b0/", 'x, "y"/']),
        st.sampled_from(OUTCOMES),
        st.none() | st.integers(0, 16),
        st.none() | MESSAGES,
        st.integers(0, 1),
        st.integers(0, 2**40),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shards=st.lists(FILES, min_size=1, max_size=4))
def test_totals_are_the_per_outcome_counts_of_the_files(
    shards: list[list[tuple[str, str, int | None, str | None, int, int]]],
) -> None:
    plan = [
        [
            File(f"site/{s}/{d}{i}.dcm", size, outcome, code, message, changed)
            for i, (d, outcome, code, message, changed, size) in enumerate(files)
        ]
        for s, files in enumerate(shards)
    ]
    plan = [files for files in plan if files]  # a planned shard holds at least one file
    if not plan:
        plan = [[File("site/0/only.dcm")]]
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "s.db"
        plan_state(state, plan)
        config = write_config(Path(tmp), state)
        runner = CliRunner()

        def report(*args: str) -> str:
            result = runner.invoke(app, ["report", str(config), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.stdout

        document = json.loads(report("--format", "json"))
        files: list[dict[str, Any]] = document["files"]
        counts = Counter(f["outcome"] for f in files)
        assert document["totals"] == {o: counts[o] for o in OUTCOMES}
        assert sum(document["totals"].values()) == len(files) == sum(map(len, plan))
        failed = json.loads(report("--format", "json", "--failed"))
        assert failed["totals"] == document["totals"]  # totals stay over every file
        assert failed["files"] == [f for f in files if f["outcome"] == "failed"]
        # The error is there exactly for failed and unknown files, with the stored message.
        stored = {f"gs://pacs/{f.name}": f for files in plan for f in files}
        for f in files:
            source = stored[f["uri"]]
            if f["outcome"] in ("failed", "unknown"):
                code = 2 if source.code is None else source.code
                assert f["error"] == {"code": code, "message": source.message or ""}
            else:
                assert f["error"] is None
        jsonl = [json.loads(line) for line in report("--format", "jsonl").splitlines()]
        assert jsonl == files
        rows = list(csv.reader(io.StringIO(report("--format", "csv"), newline="")))
        assert [r[0] for r in rows[1:]] == [f["uri"] for f in files]
        assert [r[5] for r in rows[1:]] == [(f["error"] or {}).get("message", "") for f in files]


def test_a_ledger_written_by_the_planner(gcs_emulator: RunningServer, tmp_path: Path) -> None:
    """``bulkmover plan`` against the Cloud Storage emulator, outcomes set as a run sets them,
    then the report names every object of the bucket."""
    bucket = f"report-{uuid.uuid4().hex[:10]}"
    names = [f"site/{d}/{s}/{i}.dcm" for d in "ab" for s in ("1.2", "1.3") for i in range(3)]
    fill_bucket(gcs_emulator.url, bucket, {name: b"x" * (i + 1) for i, name in enumerate(names)})
    config = tmp_path / "job.yaml"
    config.write_text(
        "target: {project: p, location: l, dataset: d, dicom_store: s}\n"
        f'storage: {{endpoint: "{gcs_emulator.url}"}}\n'
        f'import: {{source: "gs://{bucket}/site/**.dcm", max_objects_per_shard: 4}}\n'
        "credentials: {kind: anonymous}\n"
        f"state: {tmp_path / 'state.db'}\n"
    )
    planned = bulkmover("plan", str(config), "--json")
    assert planned.returncode == 0, planned.stderr
    with StateStore.open(tmp_path / "state.db") as store:
        store.conn.execute(
            "UPDATE objects SET outcome = 'failed', error_code = 3, error_message = 'not DICOM'"
            " WHERE name = '1.dcm'"
        )
    result = bulkmover("report", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    files = document["files"]
    assert sorted(f["uri"] for f in files) == sorted(f"gs://{bucket}/{n}" for n in names)
    assert [(f["shard"], f["uri"]) for f in files] == sorted((f["shard"], f["uri"]) for f in files)
    assert document["totals"] == {"imported": 0, "failed": 4, "unknown": 0, "pending": 8}
    sizes = {f"gs://{bucket}/{n}": i + 1 for i, n in enumerate(names)}
    assert all(f["size"] == sizes[f["uri"]] for f in files)
    assert {f["uri"].rsplit("/", 1)[1] for f in files if f["error"]} == {"1.dcm"}
