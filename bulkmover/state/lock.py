"""One writer per state file: an OS file lock that dies with its process.

Two ``run``s on one state file would both submit every shard; a ``plan --replan`` under a
``run`` would pull shards from under it. Every writing command (``plan``, ``run``, ``run
--retry-failed``, ``demo``) holds an exclusive ``flock`` on ``STATE.lock`` for its whole life;
a second writer stops at once with one line naming the holder. The kernel drops the lock when
the holder exits, however (kill -9 included), so a crash never leaves it held. Readers
(``status``, ``report``, ``verify``) take no lock: SQLite's WAL lets them read beside the writer.

The lock is re-entrant within a process (``demo`` plans and runs under one hold): ``flock``
conflicts between two opens of one file even in the same process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bulkmover.errors import StateError

_held: dict[Path, tuple[IO[str], int]] = {}  # lock path -> (open file, depth)


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + ".lock")


@contextmanager
def writer_lock(state: Path) -> Iterator[None]:
    """Hold the state file's writer lock for the block; StateError if another process has it."""
    path = lock_path(state).resolve()
    if path in _held:
        handle, depth = _held[path]
        _held[path] = (handle, depth + 1)
        try:
            yield
        finally:
            handle, depth = _held[path]
            _held[path] = (handle, depth - 1)
        return
    handle = _open(path, state)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        handle.close()
        raise StateError(
            f"state file {state} is in use by another bulkmover ({holder}); wait for it to end"
            " or stop it, then run again (`status` and `report` can read it meanwhile)"
        ) from None
    handle.seek(0)
    handle.truncate()
    who = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
           "command": " ".join(sys.argv[1:3])}  # fmt: skip
    handle.write(json.dumps(who) + "\n")
    handle.flush()
    _held[path] = (handle, 1)
    try:
        yield
    finally:
        handle, depth = _held[path]
        if depth <= 1:
            del _held[path]
            handle.close()  # closing releases the lock
        else:
            _held[path] = (handle, depth - 1)


def _open(path: Path, state: Path) -> IO[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held beyond this function)
    except OSError as err:
        raise StateError(
            f"cannot open the lock file {path} beside state file {state} for writing"
            f" ({err.strerror or err}): make it and its directory writable (an immutable flag"
            " shows in `lsattr`, a read-only mount in `mount`), or fix `state:` in the config"
        ) from None


def _holder(handle: IO[str]) -> str:
    """Who holds the lock, as its holder wrote it."""
    try:
        handle.seek(0)
        who = json.loads(handle.read() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(who["since"])))
        return f"pid {who['pid']} on {who['host']}, `{who.get('command', '')}` since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "a process that left no details"
