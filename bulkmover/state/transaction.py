"""The one way the state file is written: ``with transaction(conn): ...``.

Crash safety rests on it: every change (a plan, a shard transition, a migration) is one
transaction, so a killed process leaves the file at some prefix of the commits. ``BEGIN
IMMEDIATE`` takes the write lock up front, so a second writer waits (``busy_timeout``) at the
start instead of failing half-way. A block run inside an open transaction joins it: the outer
block commits or rolls back the whole, so helpers can be composed without nesting errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception (or a failed commit).

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that nothing else opens
    transactions behind this one's back.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite rolls some errors back itself (disk full, I/O): then there is nothing to undo.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
