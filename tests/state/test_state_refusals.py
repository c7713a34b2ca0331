"""A state file that is damaged, from a newer bulkmover, or cannot be written (nor its lock or
log) is refused by every command with one line saying what and how to fix it, never a
traceback, and never replaced.

Each case starts from a real state file written by ``bulkmover plan`` against the emulators,
then damages it the way disks and people do: garbage over the header or over one table's
page, a newer schema number, an immutable flag, a read-only mount.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cloudkit import fill_bucket

from bulkmover.emulator.processes import RunningServer
from bulkmover.state.schema import SCHEMA_VERSION

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}", max_attempts: 2}}
import:
  source: "gs://{bucket}/site/**.dcm"
  max_objects_per_shard: 3
run: {{give_up_after_seconds: 20}}
credentials: {{kind: anonymous}}
state: state/job.db
"""
READERS = (("status",), ("report",))
WRITERS = (("plan", "--replan"), ("run", "--create-store"))
GARBAGE = b"\xa5" * 4096  # no valid page starts with 0xa5: SQLite must call it corrupt


def bulkmover(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "bulkmover.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command (and nothing else on stderr)."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def planned(
    gcs_emulator: RunningServer,
    healthcare_emulator: RunningServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, bytes]:
    """A config (text) and the state file ``plan`` wrote for it (bytes): 12 files, 4 shards."""
    bucket = f"refuse-{uuid.uuid4().hex[:10]}"
    objects = {f"site/{d}/{i}.dcm": b"not dicom" for d in "abcd" for i in range(3)}
    fill_bucket(gcs_emulator.url, bucket, objects)
    config = CONFIG.format(hc=healthcare_emulator.url, gcs=gcs_emulator.url, bucket=bucket)
    work = tmp_path_factory.mktemp("planned")
    (work / "job.yaml").write_text(config)
    result = bulkmover("plan", str(work / "job.yaml"))
    assert result.returncode == 0, result.stderr
    state = work / "state" / "job.db"
    assert not state.with_name("job.db-wal").exists()  # checkpointed: the file is everything
    return config, state.read_bytes()


def job(tmp_path: Path, planned: tuple[str, bytes]) -> tuple[Path, Path]:
    """A fresh copy of the planned job in ``tmp_path``: (config, state file)."""
    config, state_bytes = planned
    (tmp_path / "job.yaml").write_text(config)
    state = tmp_path / "state" / "job.db"
    state.parent.mkdir()
    state.write_bytes(state_bytes)
    return tmp_path / "job.yaml", state


def page_offset(state: Path, table: str) -> int:
    """Where the root page of ``table`` starts in the file."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        page = root.fetchone()[0]
    conn.close()
    return int((page - 1) * size)


def overwrite(state: Path, offset: int, data: bytes) -> None:
    with state.open("r+b") as f:
        f.seek(offset)
        f.write(data)


# Garbage over the header (SQLite: "file is not a database"), and over the first page of the
# shards table (every command reads it) or of the ledger (read by status, report and replan).
DAMAGE = {
    "header": (None, b"\xa5" * 100, "not a usable bulkmover state file (file is not a database)"),
    "shards-page": ("shards", GARBAGE, "is damaged (database disk image is malformed)"),
    "ledger-page": ("objects", GARBAGE, "is damaged (database disk image is malformed)"),
}


@pytest.mark.parametrize("command", READERS + WRITERS, ids=" ".join)
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_state_file_is_refused_in_one_line_and_kept(
    planned: tuple[str, bytes], tmp_path: Path, damage: str, command: tuple[str, ...]
) -> None:
    table, garbage, says = DAMAGE[damage]
    config, state = job(tmp_path, planned)
    offset = 0 if table is None else page_offset(state, table)
    overwrite(state, offset, garbage)
    before = state.read_bytes()
    line = one_line(bulkmover(command[0], str(config), *command[1:]))
    assert f"{state} is damaged" in line or f"{state} is not a usable" in line
    assert says in line
    assert "restore it from a backup copy, or move it aside and plan again" in line
    after = state.read_bytes()
    assert after[offset : offset + len(garbage)] == garbage  # never repaired by replacing
    if command in READERS or command[0] == "plan":
        assert after == before


@pytest.mark.parametrize("command", READERS + WRITERS + (("verify",),), ids=" ".join)
def test_a_state_file_from_a_newer_bulkmover_is_refused_never_migrated(
    planned: tuple[str, bytes], tmp_path: Path, command: tuple[str, ...]
) -> None:
    config, state = job(tmp_path, planned)
    with sqlite3.connect(state) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = state.read_bytes()
    line = one_line(bulkmover(command[0], str(config), *command[1:]))
    assert str(state) in line
    assert f"newer bulkmover (schema {SCHEMA_VERSION + 1}" in line
    assert "upgrade bulkmover" in line
    assert state.read_bytes() == before


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """``path`` cannot be opened for writing, by root too when possible: ``chattr +i`` (an
    immutable file, as root), else mode 0o444 (which does not stop root). Skips the test when
    neither holds here."""
    undo: list[str] = []
    if os.geteuid() == 0 and shutil.which("chattr"):
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if done.returncode == 0:
            undo = ["chattr", "-i", str(path)]
    if not undo:
        mode = path.stat().st_mode
        path.chmod(0o444)
    try:
        try:
            path.open("ab").close()
        except PermissionError:
            pass
        else:
            pytest.skip(
                "cannot make a file unwritable here (root without chattr +i, or a file system"
                " without the immutable flag)"
            )
        yield
    finally:
        if undo:
            subprocess.run(undo, check=True)
        else:
            path.chmod(mode)


@pytest.mark.parametrize("command", WRITERS, ids=" ".join)
def test_an_immutable_state_file_is_refused_before_any_work(
    planned: tuple[str, bytes], tmp_path: Path, command: tuple[str, ...]
) -> None:
    config, state = job(tmp_path, planned)
    before = state.read_bytes()
    with unwritable(state):
        result = bulkmover(command[0], str(config), *command[1:])
    line = one_line(result)
    assert f"cannot write state file {state} (attempt to write a readonly database)" in line
    assert "make the file and its directory writable" in line
    assert state.read_bytes() == before


@pytest.mark.parametrize("name", ["job.log.jsonl", "job.db.lock"])
def test_an_unwritable_log_or_lock_file_is_one_line(
    planned: tuple[str, bytes], tmp_path: Path, name: str
) -> None:
    config, state = job(tmp_path, planned)
    victim = state.with_name(name)
    victim.write_text("")
    with unwritable(victim):
        result = bulkmover("run", str(config))
    line = one_line(result)
    assert f"{victim}" in line and "writable" in line


def read_only_mount() -> tuple[str, ...]:
    """A command prefix running its command with ``$RO_DIR`` bind-mounted read-only (a user and
    mount namespace: no privileges needed); the test is skipped where namespaces are off."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("no user namespaces here (unshare -rm), so no read-only mount to test on")
    script = 'mount --bind "$RO_DIR" "$RO_DIR" && mount -o remount,bind,ro "$RO_DIR" && exec "$@"'
    return ("unshare", "-rm", "sh", "-c", script, "sh")


@pytest.mark.parametrize("command", READERS + WRITERS, ids=" ".join)
def test_a_state_directory_on_a_read_only_file_system_is_one_line(
    planned: tuple[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    config, state = job(tmp_path, planned)
    monkeypatch.setenv("RO_DIR", str(state.parent))
    before = state.read_bytes()
    result = bulkmover(command[0], str(config), *command[1:], prefix=read_only_mount())
    line = one_line(result)
    assert str(state) in line and "mount" in line
    assert state.read_bytes() == before
