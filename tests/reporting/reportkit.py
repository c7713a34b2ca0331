"""Real state files for the report tests, and the CLI run the way a user runs it.

A ledger is planned through ``StateStore.writing_plan`` (as the planner writes it), then each
file's outcome columns are set with SQL, as the executor's settling code leaves them.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bulkmover.state import PlanDraft, StateStore

STORE = "projects/p/locations/l/datasets/d/dicomStores/s"
CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: {store}}}
import: {{source: "gs://{bucket}/site/**.dcm"}}
credentials: {{kind: anonymous}}
state: {state}
"""


@dataclass(frozen=True)
class File:
    """One planned file and what became of it (columns as migration 4 stores them)."""

    name: str
    size: int = 100
    outcome: str = "imported"
    code: int | None = None
    message: str | None = None
    changed: int = 0


PARSE = "Failed to parse DICOM: unexpected end of file"
ODD_MESSAGE = 'SOP Instance UID is missing, "0008,0018"\nsee the log'
ODD_NAME = 'site/1/odd, "name".dcm'

# A sample plan with every outcome. Shard 1 holds names that sort after shard 2's: the report
# orders by shard first. Within shard 1, "site/9/b/x.dcm" comes before "site/9/b0.dcm"
# ('/' < '0'): by full name, not by directory then file.
SHARDS = [
    [
        File("site/9/b0.dcm", 10),
        File("site/9/b/x.dcm", 20, "failed", 3, PARSE),
        File("site/9/b/y.dcm", 30, "unknown", None, "its operation ended unreadable", 1),
        File("site/9/a.dcm", 40, "pending"),
        File("site/9/c.dcm", 50, "imported", 3, "an earlier attempt failed"),
    ],
    [
        File("site/1/0.dcm", 60, "failed", 3, PARSE),
        File("site/1/1.dcm", 70, "unknown", 14, "the store was unavailable"),
        File("site/1/2.dcm", 80, "failed", 9, ODD_MESSAGE, 1),
        File(ODD_NAME, 90),
    ],
]


def write_config(
    tmp_path: Path, state: Path, *, bucket: str = "pacs", store: str = "s", name: str = "job.yaml"
) -> Path:
    path = tmp_path / name
    path.write_text(CONFIG.format(bucket=bucket, state=state, store=store))
    return path


def plan_state(
    state: Path, shards: list[list[File]], *, bucket: str = "pacs", bind: bool = True
) -> None:
    """A state file whose plan holds ``shards`` (ids 1, 2, ... in order), outcomes set."""
    store = StateStore.open(state)
    total = sum(f.size for files in shards for f in files)
    count = sum(len(files) for files in shards)
    draft = PlanDraft(f"gs://{bucket}/site/**.dcm", 5000, 2**40, count, count, total, 0.0)
    with store.writing_plan(draft) as plan:
        for index, files in enumerate(shards):
            shard_id = plan.add_shard(
                f"gs://{bucket}/site/{index}/**.dcm",
                f"site/{index}/",
                len(files),
                sum(f.size for f in files),
            )
            plan.add_objects(shard_id, [(f.name, f.size, 7) for f in files])
    set_outcomes(store.conn, shards)
    if bind:
        store.check_target(STORE, record=True)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def set_outcomes(conn: sqlite3.Connection, shards: list[list[File]]) -> None:
    conn.execute("BEGIN")
    for index, files in enumerate(shards):
        for f in files:
            cut = f.name.rfind("/") + 1
            cursor = conn.execute(
                "UPDATE objects SET outcome = ?, error_code = ?, error_message = ?, changed = ?"
                " WHERE shard_id = ? AND name = ? AND directory_id IN"
                " (SELECT id FROM directories WHERE path = ?)",
                (f.outcome, f.code, f.message, f.changed, index + 1, f.name[cut:], f.name[:cut]),
            )
            assert cursor.rowcount == 1, f
    conn.execute("COMMIT")


def fingerprint(state: Path) -> tuple[str, int]:
    """The state file's bytes (hashed) and schema version: what "untouched" means."""
    data = state.read_bytes()
    return hashlib.sha256(data).hexdigest(), int.from_bytes(data[60:64], "big")


def bulkmover(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkmover.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]
