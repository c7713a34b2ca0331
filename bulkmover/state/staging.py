"""A scratch SQLite file that a listing streams into: matched objects, by name and by directory.

The lister delivers pages from many pieces at once, in no global order; the sharder needs the
names grouped by directory and re-readable by prefix, and the ledger copy needs them by name.
A writer thread stores each page as it comes, off the event loop (SQLite releases the GIL while
it works), into a ``WITHOUT ROWID`` table keyed by name, and keeps one aggregate row per
directory (files, bytes, and an id the ledger reuses). Nothing accumulates in memory: a bounded
queue holds a few pages at most. It is scratch: no journal, no fsync, deleted when the plan is
written (or fails). It sits beside the state file (same disk, same permissions). It is a
``bulkmover.planning.sharding.Listing``.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from bulkmover.errors import StateError

QUEUED_PAGES = 64
TAKEN = -1  # ``listing.taken`` of a name taken by no particular shard (``mark_taken``)

SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -32768;
CREATE TABLE listing (
    name TEXT NOT NULL PRIMARY KEY,
    size INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    cut INTEGER NOT NULL,           -- length of the directory part: name[:cut] ends with '/'
    directory_id INTEGER NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0 -- 0: free; else the kept shard that owns it (-1: unnamed)
) WITHOUT ROWID;
CREATE TABLE directories (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0
);
"""


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


def shard_condition(
    column: str, prefix: str, glob: str, slashes: int | None
) -> tuple[str, tuple[str | int, ...]]:
    """SQL condition (and parameters) of a shard URI over names (``gcs.wildcard.sql_glob``):
    starts with ``prefix`` (a range, using the key), matches ``glob``, holds ``slashes``
    slashes."""
    end = prefix_end(prefix)
    where = f"{column} >= ?" + ("" if end is None else f" AND {column} < ?")
    params: tuple[str | int, ...] = (prefix,) if end is None else (prefix, end)
    where += f" AND {column} GLOB ?"
    params += (glob,)
    if slashes is not None:
        where += f" AND length({column}) - length(replace({column}, '/', '')) = ?"
        params += (slashes,)
    return where, params


class ListingStage:
    """``add`` pages while listing; then read rows back sorted, whole, by prefix or directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.executescript(SCHEMA + "BEGIN;")
        except (OSError, sqlite3.Error) as err:
            raise StateError(f"cannot create scratch file {path}: {err}; check `state:`") from None
        self._open = True
        self._recount = False
        self._error: BaseException | None = None
        self._queue: queue.Queue[list[tuple[str, int, int]] | None] = queue.Queue(QUEUED_PAGES)
        self._writer: threading.Thread | None = threading.Thread(
            target=self._write, name="listing-stage", daemon=True
        )
        self._writer.start()

    # --- while listing (the writer thread owns the connection) -------------------------------

    def add(self, objects: Sequence[tuple[str, int, int]]) -> None:
        """Queue matched ``(name, size, generation)`` rows (blocks while the queue is full)."""
        if self._writer is None:
            raise StateError("internal error: rows added to a finished listing stage")
        if self._error is None:
            self._queue.put(list(objects))

    def _write(self) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                self._store(batch)
        except BaseException as err:  # reported by finish(); keep draining so add() never blocks
            self._error = err
            while self._queue.get() is not None:
                pass

    def _store(self, batch: list[tuple[str, int, int]]) -> None:
        groups: dict[str, list[int]] = {}  # path -> [files, bytes, id]
        cuts = []
        for name, size, _ in batch:
            cut = name.rfind("/") + 1
            cuts.append(cut)
            group = groups.get(name[:cut])
            if group is None:
                group = groups[name[:cut]] = [0, 0, 0]
            group[0] += 1
            group[1] += size
        for path, group in groups.items():
            group[2] = self.conn.execute(
                "INSERT INTO directories (path, files, bytes) VALUES (?, ?, ?) ON CONFLICT (path)"
                " DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes"
                " RETURNING id",
                (path, group[0], group[1]),
            ).fetchone()[0]
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO listing (name, size, generation, cut, directory_id)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (name, size, gen, cut, groups[name[:cut]][2])
                for (name, size, gen), cut in zip(batch, cuts, strict=True)
            ],
        )
        if self.conn.total_changes - before != len(batch):
            self._recount = True  # a name came twice: its directory counted it twice

    def finish(self) -> None:
        """Wait until every queued page is stored. Every read calls it first."""
        if self._writer is None:
            return
        self._queue.put(None)
        self._writer.join()
        self._writer = None
        if self._error is not None:
            raise StateError(
                f"could not write the listing to scratch file {self.path}: {self._error}; check"
                " free disk space beside the state file"
            )
        if self._recount:
            self._recount_directories()

    def _recount_directories(self) -> None:
        self.conn.executescript(
            """
            UPDATE directories SET files = 0, bytes = 0;
            UPDATE directories SET files = t.files, bytes = t.bytes
            FROM (SELECT directory_id, count(*) AS files, sum(size) AS bytes FROM listing
                  GROUP BY directory_id) AS t
            WHERE directories.id = t.directory_id;
            """
        )

    # --- after listing -----------------------------------------------------------------------

    def mark_taken(self, names: Iterable[str], owner: int = TAKEN) -> int:
        """Flag names that shards which already ran hold; returns how many are listed."""
        marked = self.take_names(names, owner)
        self.recount_taken()
        return marked

    def take_names(self, names: Iterable[str], owner: int = TAKEN) -> int:
        """Give the listed ``names`` not taken yet to kept shard ``owner`` (its ledger names);
        returns how many. ``recount_taken`` once every owner has taken its names."""
        self.finish()
        before = self.conn.total_changes
        self.conn.executemany(
            "UPDATE listing SET taken = ? WHERE name = ? AND taken = 0",
            ((owner, name) for name in names),
        )
        return self.conn.total_changes - before

    def take_matching(self, owner: int, prefix: str, glob: str, slashes: int | None) -> int:
        """Give kept shard ``owner`` every free name its URI matches (``shard_condition``):
        on replan, whatever a kept shard's URI imports belongs to it, even names added to the
        bucket after it ran, so that no new shard's URI can match them too."""
        self.finish()
        where, params = shard_condition("name", prefix, glob, slashes)
        before = self.conn.total_changes
        self.conn.execute(
            f"UPDATE listing SET taken = ? WHERE taken = 0 AND {where}", (owner, *params)
        )
        return self.conn.total_changes - before

    def recount_taken(self) -> None:
        """Each directory's count of taken names (the sharder splits around them)."""
        self.finish()
        self.conn.executescript(
            """
            UPDATE directories SET taken = 0;
            UPDATE directories SET taken = t.n
            FROM (SELECT directory_id, count(*) AS n FROM listing WHERE taken != 0
                  GROUP BY directory_id) AS t
            WHERE directories.id = t.directory_id;
            """
        )

    def count(self) -> tuple[int, int]:
        """(objects, bytes) staged."""
        self.finish()
        row = self.conn.execute(
            "SELECT coalesce(sum(files), 0), coalesce(sum(bytes), 0) FROM directories"
        ).fetchone()
        return int(row[0]), int(row[1])

    def directories(self) -> Iterator[tuple[str, int, int, int]]:
        """``(directory, files, bytes, taken files)`` per directory, in path order."""
        self.finish()
        cursor = self.conn.execute(
            "SELECT path, files, bytes, taken FROM directories WHERE files > 0 ORDER BY path"
        )
        while batch := cursor.fetchmany(4096):
            yield from batch

    def files(self, directory: str) -> Iterator[tuple[str, int, int]]:
        """``(name, size, taken)`` of the files directly in ``directory``, in order."""
        return self._select(directory, "name, size, taken != 0", f" AND cut = {len(directory)}")

    def under(self, prefix: str) -> Iterator[tuple[str, int, int]]:
        """``(name, size, taken)`` of names starting with ``prefix``, in order."""
        return self._select(prefix, "name, size, taken != 0")

    def rows(self, prefix: str = "") -> Iterator[tuple[str, int, int, bool]]:
        """``(name, size, generation, taken)`` of names starting with ``prefix``, in order."""
        rows = self._select(prefix, "name, size, taken != 0, generation")
        for name, size, taken, generation in rows:
            yield name, size, generation, bool(taken)

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
        """Stop the writer, close and delete the scratch file."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
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
