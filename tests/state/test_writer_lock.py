"""One writer per state file: a second one stops at once, naming the holder; kill -9 frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulkmover.errors import StateError
from bulkmover.state.lock import lock_path, writer_lock

HOLD = """
import sys, time
from pathlib import Path
from bulkmover.state.lock import writer_lock
with writer_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_child(state: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "state" / "run.db"
    child = hold_in_child(state)
    try:
        with pytest.raises(StateError) as err, writer_lock(state):
            pass
        message = str(err.value)
        assert f"pid {child.pid}" in message and "\n" not in message
        assert "in use by another bulkmover" in message
    finally:
        child.kill()
        child.wait()


def test_kill9_of_the_holder_frees_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "run.db"
    child = hold_in_child(state)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 5
    while True:  # the kernel drops the lock with the process
        try:
            with writer_lock(state):
                break
        except StateError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert lock_path(state).exists()


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    state = tmp_path / "run.db"
    with writer_lock(state), writer_lock(state):
        pass
    with writer_lock(state):  # released in full after the outer block
        pass
