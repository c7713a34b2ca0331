"""A scratch SQLite file that a listing streams into: matched objects, then sorted by name on disk.

The lister delivers pages from many pieces at once, in no global order; the sharder needs the
names grouped by directory and re-readable by prefix. While listing, rows are appended to a
heap (cheap: no index to keep in order under 32 interleaved streams); ``finish`` sorts them once
into a ``WITHOUT ROWID`` table keyed by name. Nothing is held in memory. It is scratch: no
journal, no fsync, deleted when the plan is written (or fails). It sits beside the state file
(same disk, same permissions). It is a ``bulkmover.planning.sharding.Listing``.
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
        self._pending = False
        self.conn.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA locking_mode = EXCLUSIVE;
            PRAGMA cache_size = -32768;
            CREATE TABLE raw (
                name TEXT NOT NULL,
                size INTEGER NOT NULL,
                generation INTEGER NOT NULL,
                cut INTEGER NOT NULL
            );
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
        """Append matched ``(name, size, generation)`` rows (while listing)."""
        self.conn.executemany(
            "INSERT INTO raw (name, size, generation, cut) VALUES (?, ?, ?, ?)",
            [(name, size, gen, name.rfind("/") + 1) for name, size, gen in objects],
        )
        self._pending = True

    def finish(self) -> None:
        """Sort what was listed into the name-keyed table (a name listed twice is kept once).

        Every read calls it first; rows added after it are appended again by the next read.
        """
        if not self._pending:
            return
        self._pending = False
        self.conn.execute(
            "INSERT OR REPLACE INTO listing (name, size, generation, cut)"
            " SELECT name, size, generation, cut FROM raw ORDER BY name"
        )
        self.conn.execute("DELETE FROM raw")

    def mark_taken(self, names: Iterable[str]) -> int:
        """Flag names that shards which already ran hold; returns how many are listed."""
        self.finish()
        before = self.conn.total_changes
        self.conn.executemany(
            "UPDATE listing SET taken = 1 WHERE name = ?", ((name,) for name in names)
        )
        return self.conn.total_changes - before

    def count(self) -> tuple[int, int]:
        """(objects, bytes) staged."""
        self.finish()
        row = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM listing").fetchone()
        return int(row[0]), int(row[1])

    def rows(self, prefix: str = "") -> Iterator[tuple[str, int, int, bool]]:
        """``(name, size, generation, taken)`` of names starting with ``prefix``, in order."""
        for name, size, taken, generation in self._select(prefix, "name, size, taken, generation"):
            yield name, size, generation, bool(taken)

    def directories(self) -> Iterator[tuple[str, int, int, int]]:
        """``(directory, files, bytes, taken files)`` per directory, in path order."""
        self.finish()
        cursor = self.conn.execute(
            "SELECT substr(name, 1, cut) AS directory, count(*), sum(size), sum(taken)"
            " FROM listing GROUP BY directory ORDER BY directory"
        )
        while batch := cursor.fetchmany(4096):
            yield from batch

    def files(self, directory: str) -> Iterator[tuple[str, int, int]]:
        """``(name, size, taken)`` of the files directly in ``directory``, in order."""
        return self._select(directory, "name, size, taken", f" AND cut = {len(directory)}")

    def under(self, prefix: str) -> Iterator[tuple[str, int, int]]:
        """``(name, size, taken)`` of names starting with ``prefix``, in order."""
        return self._select(prefix, "name, size, taken")

    def _select(self, prefix: str, columns: str, more: str = "") -> Iterator[tuple]:  # type: ignore[type-arg]
        self.finish()
        end = prefix_end(prefix)
        query = "name >= ?" if end is None else "name >= ? AND name < ?"
        params = (prefix,) if end is None else (prefix, end)
        cursor = self.conn.execute(
            f"SELECT {columns} FROM listing WHERE {query}{more} ORDER BY name", params
        )
        while batch := cursor.fetchmany(4096):
            yield from batch

    def seal(self) -> Path:
        """Commit and close, so that the state file can attach the stage; returns its path."""
        if self._open:
            self.finish()
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
