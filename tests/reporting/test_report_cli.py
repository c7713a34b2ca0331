"""``bulkmover report`` as a user runs it: a subprocess on a real state file, its stdout, stderr,
exit code and output file."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from reportkit import (
    ODD_MESSAGE,
    ODD_NAME,
    PARSE,
    SHARDS,
    File,
    bulkmover,
    fingerprint,
    one_error_line,
    plan_state,
    write_config,
)

from bulkmover.state.schema import MIGRATIONS
from bulkmover.state.store import APPLICATION_ID

UNREADABLE = "its operation ended unreadable"


def entry(name: str, size: int, shard: int, outcome: str, error: Any = None) -> dict[str, Any]:
    return {"uri": f"gs://pacs/{name}", "size": size, "shard": shard, "outcome": outcome,
            "error": error}  # fmt: skip


FILES = [
    entry("site/9/a.dcm", 40, 1, "pending"),
    entry("site/9/b/x.dcm", 20, 1, "failed", {"code": 3, "message": PARSE}),
    entry("site/9/b/y.dcm", 30, 1, "unknown", {"code": 2, "message": UNREADABLE}),
    entry("site/9/b0.dcm", 10, 1, "imported"),
    entry("site/9/c.dcm", 50, 1, "imported"),
    entry("site/1/0.dcm", 60, 2, "failed", {"code": 3, "message": PARSE}),
    entry("site/1/1.dcm", 70, 2, "unknown", {"code": 14, "message": "the store was unavailable"}),
    entry("site/1/2.dcm", 80, 2, "failed", {"code": 9, "message": ODD_MESSAGE}),
    entry(ODD_NAME, 90, 2, "imported"),
]  # fmt: skip
CHANGED = {"gs://pacs/site/9/b/y.dcm", "gs://pacs/site/1/2.dcm"}
TOTALS = {"imported": 3, "failed": 3, "unknown": 2, "pending": 1}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    state = tmp_path / "state" / "job.db"
    state.parent.mkdir()
    plan_state(state, SHARDS)
    return write_config(tmp_path, state)


def report(config: Path, *args: str) -> str:
    result = bulkmover("report", str(config), *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_json_is_exactly_the_documented_shape(config: Path) -> None:
    document = json.loads(report(config, "--format", "json"))  # stdout holds the JSON only
    assert document == {"totals": TOTALS, "files": FILES}
    assert list(document) == ["totals", "files"]
    assert [list(f) for f in document["files"]] == [
        ["uri", "size", "shard", "outcome", "error"]
    ] * len(FILES)


def test_jsonl_is_one_file_object_a_line(config: Path) -> None:
    lines = report(config, "--format", "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == FILES  # no totals line


def csv_rows(files: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for f in files:
        error = f["error"] or {"code": "", "message": ""}
        changed = "1" if f["uri"] in CHANGED else "0"
        row = [f["uri"], f["size"], f["shard"], f["outcome"], error["code"], error["message"]]
        rows.append([str(cell) for cell in row] + [changed])
    return rows


def test_csv_columns_and_quoting(config: Path) -> None:
    text = report(config, "--format", "csv")
    assert text.splitlines()[0] == "uri,size,shard,outcome,error_code,error_message,changed"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[1:] == csv_rows(FILES)
    # Quoted exactly as the csv module quotes (commas, quotes and line breaks only).
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerows(rows)
    assert text == expected.getvalue()
    assert '"gs://pacs/site/1/odd, ""name"".dcm",90,2,imported,,,0\n' in text


def test_table_shows_totals_reasons_and_every_file(config: Path) -> None:
    text = report(config)
    assert "\x1b[" not in text  # no colour codes off a terminal
    lines = text.splitlines()
    assert lines[0] == "bulkmover report: gs://pacs/site/**.dcm"
    assert lines[1].split() == ["files", "imported", "failed", "unknown", "pending"]
    assert lines[2].split() == ["9", "3", "3", "2", "1"]
    reasons = [line.split() for line in lines if PARSE in line and "gs://" not in line]
    assert reasons == [["failed", "3", *PARSE.split(), "2"]]
    assert ["unknown", "14", "the", "store", "was", "unavailable", "1"] in [
        line.split() for line in lines
    ]
    # One line per file, in report order, each holding its whole URI, size, shard and outcome.
    file_lines = [line for line in lines if line.startswith("gs://")]
    assert [line.split()[0] for line in file_lines[:-1]] == [f["uri"] for f in FILES[:-1]]
    assert file_lines[-1].startswith(FILES[-1]["uri"])
    for line, f in zip(file_lines[:-1], FILES[:-1], strict=True):
        assert line.split()[1:4] == [str(f["size"]), str(f["shard"]), f["outcome"]]
        if f["error"]:
            message = " ".join(f["error"]["message"].split())
            assert line.split()[-len(message.split()) - 1 :] == [
                str(f["error"]["code"]),
                *message.split(),
            ]
        else:
            assert line.split()[4:] == ([] if f["uri"] not in CHANGED else ["yes"])
    changed = {line.split()[0] for line in file_lines if line.split()[4:5] == ["yes"]}
    assert changed == CHANGED


def test_failed_keeps_only_failed_files_and_every_total(config: Path) -> None:
    failed = [f for f in FILES if f["outcome"] == "failed"]
    document = json.loads(report(config, "--format", "json", "--failed"))
    assert document == {"totals": TOTALS, "files": failed}  # unknown files are left out
    lines = report(config, "--format", "jsonl", "--failed").splitlines()
    assert [json.loads(line) for line in lines] == failed
    rows = list(csv.reader(io.StringIO(report(config, "--format", "csv", "--failed"))))
    assert rows[1:] == csv_rows(failed)
    table = report(config, "--failed")
    assert [line.split()[0] for line in table.splitlines() if line.startswith("gs://")] == [
        f["uri"] for f in failed
    ]
    assert "the store was unavailable" not in table  # not among the reasons either
    assert table.splitlines()[2].split() == ["9", "3", "3", "2", "1"]


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_output_writes_the_report_to_a_file(config: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    out.write_text("an older report, longer than the new one\n" * 1000)
    assert report(config, "--format", fmt, "--output", str(out)) == ""
    assert out.read_text(encoding="utf-8") == report(config, "--format", fmt)


def test_nothing_failed(tmp_path: Path) -> None:
    state = tmp_path / "ok.db"
    plan_state(state, [[File("site/0/a.dcm"), File("site/0/b.dcm", outcome="pending")]])
    config = write_config(tmp_path, state)
    document = json.loads(report(config, "--format", "json", "--failed"))
    assert document == {"totals": {"imported": 1, "failed": 0, "unknown": 0, "pending": 1},
                         "files": []}  # fmt: skip
    assert report(config, "--format", "jsonl", "--failed") == ""
    assert report(config, "--format", "csv", "--failed").splitlines() == [
        "uri,size,shard,outcome,error_code,error_message,changed"
    ]
    table = report(config, "--failed")
    assert table.splitlines()[-1] == "No failed files."
    assert not [line for line in table.splitlines() if line.startswith("gs://")]


def test_help_has_an_example() -> None:
    result = bulkmover("report", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "bulkmover report configs/demo.yaml --failed" in text
    assert "--format [table|csv|json|jsonl]" in text and "--output" in text
    assert "only files whose outcome is failed (not unknown or pending)" in text


# --- bad input: one line on stderr, non-zero exit, the state file untouched -----------------


def schema_3_state(path: Path) -> None:
    """A state file as bulkmover wrote it before per-file outcomes."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:3]:
        conn.executescript(migration)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 3")
    conn.close()


def test_bad_state_is_one_clear_line_and_leaves_it_untouched(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    missing = write_config(tmp_path, tmp_path / "missing.db", name="missing.yaml")
    line = one_error_line(bulkmover("report", str(missing), "--output", str(out)))
    assert "not found; run `bulkmover plan CONFIG` first" in line
    assert not (tmp_path / "missing.db").exists()

    empty = tmp_path / "empty.db"
    from bulkmover.state import StateStore

    StateStore.open(empty).close()
    old = tmp_path / "old.db"
    schema_3_state(old)
    other = tmp_path / "other.db"
    plan_state(other, SHARDS)
    cases = [
        (write_config(tmp_path, empty, name="empty.yaml"), empty, "holds no plan"),
        (write_config(tmp_path, old, name="old.yaml"), old, "predates per-file outcomes"),
        (
            write_config(tmp_path, other, name="other.yaml", store="elsewhere"),
            other,
            "belongs to DICOM store projects/p/locations/l/datasets/d/dicomStores/s, not"
            " projects/p/locations/l/datasets/d/dicomStores/elsewhere",
        ),
    ]
    for config, state, says in cases:
        before = fingerprint(state)
        for fmt in ("table", "json"):
            line = one_error_line(bulkmover("report", str(config), "--format", fmt))
            assert says in line, line
        line = one_error_line(bulkmover("report", str(config), "--output", str(out)))
        assert says in line, line
        assert fingerprint(state) == before
        assert not out.exists()  # nothing is written before the state is known to be good
    assert fingerprint(old)[1] == 3  # not migrated


def test_output_that_cannot_be_written_is_one_clear_line(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "job.db"
    before = fingerprint(state)
    (tmp_path / "a-directory").mkdir()
    cases = [
        (tmp_path / "no-such-dir" / "r.json", "No such file or directory"),
        (tmp_path / "a-directory", "Is a directory"),
        (state, "is the state file"),
        (Path("/dev/full"), "No space left on device"),  # fails while writing, not opening
    ]
    for out, says in cases:
        for fmt in ("json", "table"):
            result = bulkmover("report", str(config), "--format", fmt, "--output", str(out))
            line = one_error_line(result)
            assert f"cannot write the report to {out}" in line or "--output" in line, line
            assert says in line, line
            assert result.returncode == 2
    assert fingerprint(state) == before
    assert not (tmp_path / "no-such-dir").exists()


def test_a_report_that_fails_half_way_leaves_no_file(tmp_path: Path) -> None:
    """A file that cannot grow past 64 KiB mid-report: the half-written file is removed."""
    if sys.platform != "linux":
        pytest.skip("needs RLIMIT_FSIZE")
    state = tmp_path / "big.db"
    plan_state(state, [[File(f"site/0/{i:05d}.dcm") for i in range(3000)]])
    config = write_config(tmp_path, state)
    out = tmp_path / "report.json"
    # Writes past 64 KiB fail with EFBIG (SIGXFSZ ignored); SQLite's files stay below it.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from bulkmover.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "report", str(config), "--format", "json",
         "--output", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    line = one_error_line(result)
    assert f"cannot write the report to {out}: File too large" in line
    assert not out.exists()


def test_a_reader_that_goes_away_ends_the_report_quietly(tmp_path: Path) -> None:
    state = tmp_path / "big.db"
    plan_state(state, [[File(f"site/0/{i:05d}.dcm") for i in range(3000)]])
    config = write_config(tmp_path, state)
    command = (
        f"{sys.executable} -m bulkmover.cli report {config} --format jsonl | head -n 1;"
        " echo ${PIPESTATUS[0]} >&2"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout)["uri"] == "gs://pacs/site/0/00000.dcm"
    assert result.stderr.strip() == "141"  # 128 + SIGPIPE, and no traceback
