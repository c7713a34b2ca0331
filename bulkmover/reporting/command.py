"""The ``report`` command's body: config in, state file read (never written), one report out.

The state file is opened like ``status`` opens it (read-only, safe beside a running ``run``) and
checked before any output is opened, so a bad state or config leaves no file behind. A report
that fails half-way through ``--output`` removes what it wrote: a partial report would look
like a complete one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from bulkmover.config import load_config
from bulkmover.errors import UsageError
from bulkmover.reporting.formats import FORMATS
from bulkmover.reporting.rows import Ledger
from bulkmover.state.store import StateStore

BROKEN_PIPE_EXIT = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away (``| head``)."""


def report_command(config_path: Path, *, fmt: str, failed_only: bool, output: Path | None) -> None:
    config = load_config(config_path)
    store = StateStore.open_readonly(config.state)
    try:
        store.check_target(str(config.target.store_path))
        with Ledger(store) as ledger, open_output(output, config.state) as out:
            FORMATS[fmt](ledger, out, failed_only, f"bulkmover report: {ledger.source()}")
    finally:
        store.close()


@contextmanager
def open_output(path: Path | None, state: Path) -> Iterator[TextIO]:
    """stdout, or ``path`` opened for writing; UsageError (one line) when it cannot be written."""
    if path is None:
        try:
            yield sys.stdout
            sys.stdout.flush()
        except BrokenPipeError:
            # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(BROKEN_PIPE_EXIT) from None
        return
    if _is_state(path, state):
        raise UsageError(f"--output {path} is the state file; choose another path")
    try:
        out = open(path, "w", encoding="utf-8", newline="", buffering=1 << 20)  # noqa: SIM115
    except OSError as err:
        raise UsageError(_cannot_write(path, err)) from None
    try:
        with out:
            yield out
    except OSError as err:
        _discard(path)
        raise UsageError(_cannot_write(path, err)) from None
    except BaseException:
        _discard(path)
        raise


def _cannot_write(path: Path, err: OSError) -> str:
    return f"cannot write the report to {path}: {err.strerror or err}; choose another --output"


def _is_state(path: Path, state: Path) -> bool:
    """``path`` is the state file or one of its WAL files (writing it would destroy the state)."""
    for victim in (
        state,
        state.with_name(state.name + "-wal"),
        state.with_name(state.name + "-shm"),
    ):
        try:
            if os.path.samefile(path, victim):
                return True
        except OSError:  # either does not exist
            continue
    return False


def _discard(path: Path) -> None:
    """Remove a half-written report (never a device such as /dev/null)."""
    try:
        if path.is_file():
            path.unlink()
    except OSError:
        pass
