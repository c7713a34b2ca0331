"""What SQLite says about the state file itself, as one line saying what to do.

SQLite finds a damaged page only when a query reads it, which may be long after the file was
opened (``status`` summing the ledger, a ``run`` settling its last shard), and finds a file it
cannot write only at the first write. So every connection to a state file is a
``GuardedConnection``: each statement, and each row fetched, turns the errors of the *file*
(damaged, not a database, read-only, unopenable, I/O, disk full, locked) into a ``StateError``
naming the file and the fix. Errors of the *query* (a missing table, a constraint) stay
``sqlite3`` errors: those are bugs, and a traceback is the right report.

>>> conn = connect(Path("run.db"), timeout=30.0)        # doctest: +SKIP
>>> conn.execute("SELECT count(*) FROM shards").fetchone()   # doctest: +SKIP
StateError: state file run.db is damaged (database disk image is malformed): restore it ...
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bulkmover.errors import StateError

# Primary result codes (https://sqlite.org/rescode.html); extended codes carry them in the low
# byte (SQLITE_READONLY_DBMOVED is 8 | 4 << 8).
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26

_RESTORE = (
    "restore it from a backup copy, or move it aside and plan again with `bulkmover plan"
    " CONFIG` (operations it already started on the server can be re-attached only through it)"
)


def file_error(path: Path, err: sqlite3.Error, *, reader: bool = False) -> StateError | None:
    """The ``StateError`` for an error of the state file at ``path``; None for an error of
    the statement (which stays a bug to report). A ``reader`` (``PRAGMA query_only``) that
    writes is such a bug, not a read-only file."""
    code = getattr(err, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    primary = code & 0xFF
    if reader and primary == SQLITE_READONLY:
        return None
    if primary == SQLITE_CORRUPT:
        return StateError(f"state file {path} is damaged ({err}): {_RESTORE}")
    if primary == SQLITE_NOTADB:  # a bad header: damaged, or another file named by mistake
        return StateError(
            f"{path} is not a usable bulkmover state file ({err}): if `state:` names the wrong"
            f" file, fix it; if this is the job's state file, it is damaged: {_RESTORE}"
        )
    if primary in (SQLITE_READONLY, SQLITE_PERM):
        return StateError(
            f"cannot write state file {path} ({err}): make the file and its directory writable"
            " (an immutable flag shows in `lsattr`, a read-only mount in `mount`), then try"
            " again"
        )
    if primary == SQLITE_CANTOPEN:
        return StateError(
            f"cannot open state file {path} ({err}): SQLite needs to read it and to create"
            f" {path.name}-wal and {path.name}-shm beside it; make it and its directory"
            " readable and writable (check the mount), or fix `state:` in the config"
        )
    if primary == SQLITE_FULL:
        return StateError(
            f"cannot write state file {path} ({err}): free space on its disk, then try again"
            " (what was recorded before is kept)"
        )
    if primary == SQLITE_IOERR:
        return StateError(
            f"I/O error on state file {path} ({err}): check its disk, mount and permissions,"
            " then try again (what was recorded before is kept)"
        )
    if primary == SQLITE_BUSY:
        return StateError(
            f"state file {path} stayed locked by another process ({err}); wait for it to"
            " finish, then try again"
        )
    return None


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose statements and fetched rows report file errors as ``StateError``."""

    connection: GuardedConnection

    def execute(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        try:
            super().execute(*args, **kwargs)
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None
        return self

    def executemany(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        try:
            super().executemany(*args, **kwargs)
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None
        return self

    def executescript(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        try:
            super().executescript(*args, **kwargs)
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None
        return self

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None

    def fetchmany(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            return super().fetchmany(*args, **kwargs)
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None

    def __next__(self) -> Any:
        # Rows of a long query are read page by page as it is iterated: a damaged page
        # surfaces here. About 0.15 us a row (1M-row scan: 0.40 s -> 0.56 s).
        try:
            return super().__next__()
        except sqlite3.Error as err:
            raise self.connection.converted(err) from None


class GuardedConnection(sqlite3.Connection):
    """A connection to the state file ``path`` (set by ``connect``); see the module docstring.

    ``sqlite3.Connection.execute`` builds a plain cursor in C, whatever ``cursor`` returns:
    these shortcuts go through ``cursor()`` so their rows are guarded too.
    """

    state_path: Path
    reader = False
    """Set by ``StateStore.open_readonly`` with ``PRAGMA query_only``."""

    def cursor(self, factory: Any = GuardedCursor) -> Any:
        return super().cursor(factory)

    def execute(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        cursor: GuardedCursor = self.cursor()
        return cursor.execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        cursor: GuardedCursor = self.cursor()
        return cursor.executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        cursor: GuardedCursor = self.cursor()
        return cursor.executescript(*args, **kwargs)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as err:
            raise self.converted(err) from None

    def converted(self, err: sqlite3.Error) -> BaseException:
        """``err`` as the StateError of this file, or ``err`` itself (an error of the query)."""
        return file_error(self.state_path, err, reader=self.reader) or err


def connect(path: Path, *, timeout: float, autocommit: bool = False) -> GuardedConnection:
    """A ``GuardedConnection`` to the state file ``path``; StateError when it cannot be opened."""
    try:
        conn = sqlite3.connect(
            path,
            timeout=timeout,
            isolation_level=None if autocommit else "DEFERRED",
            factory=GuardedConnection,
        )
    except sqlite3.Error as err:
        raise file_error(path, err) or StateError(
            f"cannot open state file {path} ({err}); fix `state:` in the config"
        ) from None
    conn.state_path = path
    return conn
