"""What a run cannot vouch for: matched files no shard imports, files gone, shards that drifted.

A run that imported every file of its ledger is still not complete when the source matched
files the plan left out (``import.unaddressable: skip``) or files were deleted from the bucket
after planning. ``run``'s exit code, its summary and ``status`` all read these counts here, so
that none of them says "complete" over a missing file.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

#: google.rpc NOT_FOUND: the code a file deleted from the bucket after planning fails with.
NOT_FOUND = 5


@dataclass(frozen=True)
class Coverage:
    unplanned: int = 0  # matched when planned, imported by no shard (names no URI singles out)
    gone: int = 0  # deleted from the bucket after planning: not imported
    changed: int = 0  # replaced in the bucket after planning (flagged; imported as they are now)
    drifted: int = 0  # shards whose operation counted other files than the plan holds

    @property
    def complete(self) -> bool:
        """Nothing matched was left out and nothing planned vanished."""
        return self.unplanned == 0 and self.gone == 0

    def as_dict(self) -> dict[str, int]:
        return {
            "unplanned": self.unplanned,
            "gone": self.gone,
            "changed": self.changed,
            "drifted_shards": self.drifted,
        }

    def notes(self) -> list[str]:
        """One phrase per count that is not zero, each with what to do about it."""
        notes = []
        if self.unplanned:
            notes.append(
                f"{self.unplanned:,} matched file(s) not planned (a name holds '*' or '?', so no"
                " import URI can single it out; import.unaddressable: skip):"
                " `bulkmover report CONFIG` lists them"
            )
        if self.gone:
            notes.append(
                f"{self.gone:,} file(s) deleted from the bucket after planning, not imported:"
                " `bulkmover plan CONFIG --replan` drops them from the plan"
            )
        if self.changed:
            notes.append(f"{self.changed:,} file(s) replaced in the bucket after planning")
        if self.drifted:
            notes.append(
                f"{self.drifted:,} shard(s) counted other files than planned (the bucket changed"
                " under them): `bulkmover plan CONFIG --replan` brings the plan to the bucket"
            )
        return notes


def read_coverage(conn: sqlite3.Connection) -> Coverage:
    """The counts, from any state file (older layouts lack some columns: those count 0)."""
    unplanned = _count(conn, "SELECT count(*) FROM unplanned")
    # Planned shards only: a child may import by a URI that matches more than its files.
    drifted = _count(conn, "SELECT count(*) FROM shards WHERE drift != 0 AND parent_id IS NULL")
    row = _row(
        conn,
        "SELECT COALESCE(SUM(changed != 0 AND outcome = 'failed' AND error_code = ?), 0),"
        " COALESCE(SUM(changed != 0), 0) FROM objects",
        (NOT_FOUND,),
    )
    gone, changed = row if row is not None else (0, 0)
    return Coverage(unplanned, gone, changed - gone, drifted)


def _count(conn: sqlite3.Connection, sql: str) -> int:
    row = _row(conn, sql, ())
    return 0 if row is None else int(row[0])


def _row(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> tuple[int, ...] | None:
    try:
        row = conn.execute(sql, params).fetchone()
    except sqlite3.OperationalError:  # a read-only view of a file from before the column
        return None
    return None if row is None else tuple(int(v or 0) for v in row)


__all__ = ["NOT_FOUND", "Coverage", "read_coverage"]
