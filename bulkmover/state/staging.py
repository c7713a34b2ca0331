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
from typing import Protocol

from bulkmover.errors import StateError


class _Object(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def generation(self) -> int: ...


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
                taken INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            BEGIN;
            """
        )

    def add(self, objects: Sequence[_Object]) -> None:
        """Store matched objects (a later listing of the same name replaces the earlier)."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO listing (name, size, generation) VALUES (?, ?, ?)",
            [(o.name, o.size, o.generation) for o in objects],
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
        end = prefix_end(prefix)
        if end is None:
            cursor = self.conn.execute(
                "SELECT name, size, generation, taken FROM listing WHERE name >= ? ORDER BY name",
                (prefix,),
            )
        else:
            cursor = self.conn.execute(
                "SELECT name, size, generation, taken FROM listing"
                " WHERE name >= ? AND name < ? ORDER BY name",
                (prefix, end),
            )
        while batch := cursor.fetchmany(4096):
            for name, size, generation, taken in batch:
                yield name, size, generation, bool(taken)

    def close(self) -> None:
        """Close and delete the scratch file."""
        self.conn.close()
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
