"""A scratch SQLite file that a listing streams into: matched objects, kept in name order on disk.

The lister delivers pages from many pieces at once, in no global order; the sharder needs the
names sorted and re-readable by prefix. A ``WITHOUT ROWID`` table keyed by name gives both
without holding a million names in memory. It is scratch: no journal, no fsync, deleted when
the plan is written (or fails). It sits beside the state file (same disk, same permissions).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from bulkmover.errors import StateError


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound).

    >>> prefix_end("a/b"), prefix_end("")
    ('a/c', None)
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:
            code = 0xE000  # surrogates cannot be stored
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


class ListingStage:
    """``add`` pages while listing; then read rows back sorted, whole or by prefix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise StateError(f"cannot create scratch file {path}: {err}; check `state:`") from None
        self._open = True
        self.conn.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA locking_mode = EXCLUSIVE;
            PRAGMA cache_size = -32768;
            CREATE TABLE listing (
                name TEXT NOT NULL PRIMARY KEY,
                size INTEGER NOT NULL,
                generation INTEGER NOT NULL,
                cut INTEGER NOT NULL,  -- length of the directory part: name[:cut] ends with '/'
                taken INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            BEGIN;
            """
        )

    def add(self, objects: Sequence[tuple[str, int, int]]) -> None:
        """Store matched ``(name, size, generation)`` (a name listed again replaces the first)."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO listing (name, size, generation, cut) VALUES (?, ?, ?, ?)",
            [(name, size, gen, name.rfind("/") + 1) for name, size, gen in objects],
        )

    def mark_taken(self, names: Iterable[str]) -> int:
        """Flag names that shards which already ran hold; returns how many are listed."""
        before = self.conn.total_changes
        self.conn.executemany(
            "UPDATE listing SET taken = 1 WHERE name = ?", ((name,) for name in names)
        )
        return self.conn.total_changes - before

    def count(self) -> tuple[int, int]:
        """(objects, bytes) staged."""
        row = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM listing").fetchone()
        return int(row[0]), int(row[1])

    def rows(self, prefix: str = "") -> Iterator[tuple[str, int, int, bool]]:
        """``(name, size, generation, taken)`` of names starting with ``prefix``, in order."""
        for name, size, taken, generation in self._select(prefix, "name, size, taken, generation"):
            yield name, size, generation, bool(taken)

    def sizes(self, prefix: str = "") -> Iterator[tuple[str, int, int]]:
        """``(name, size, taken)`` of names starting with ``prefix``, in order (what the sharder
        reads: the fewest columns, straight from the cursor)."""
        return self._select(prefix, "name, size, taken")

    def _select(self, prefix: str, columns: str) -> Iterator[tuple]:  # type: ignore[type-arg]
        end = prefix_end(prefix)
        query = "name >= ?" if end is None else "name >= ? AND name < ?"
        params = (prefix,) if end is None else (prefix, end)
        cursor = self.conn.execute(
            f"SELECT {columns} FROM listing WHERE {query} ORDER BY name", params
        )
        while batch := cursor.fetchmany(4096):
            yield from batch

    def seal(self) -> Path:
        """Commit and close, so that the state file can attach the stage; returns its path."""
        if self._open:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
            self.conn.close()
            self._open = False
        return self.path

    def close(self) -> None:
        """Close and delete the scratch file."""
        if self._open:
            self.conn.close()
            self._open = False
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ListingStage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
