"""The emulator's processes live and die together, and a bad start says why at once.

``kill -9`` of an emulator must not orphan its DICOM worker pool (and multiprocessing's resource
tracker): about 75 MB each, every time. Bad ports and unwritable data dirs are one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulkmover.emulator.processes import python_module_argv, start_server

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]


def _children() -> dict[int, set[int]]:
    """ppid -> pids of the live (not zombie) processes, from /proc."""
    tree: dict[int, set[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if state not in ("Z", "X"):
            tree.setdefault(ppid, set()).add(int(entry))
    return tree


def _descendants(pid: int) -> set[int]:
    tree = _children()
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in tree.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    live: set[int] = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            live.add(pid)
    return live


def _wait_for_descendants(pid: int, count: int, timeout: float = 30.0) -> set[int]:
    deadline = time.monotonic() + timeout
    found: set[int] = set()
    while time.monotonic() < deadline:
        found = _descendants(pid)
        if len(found) >= count:
            time.sleep(0.5)  # let the pool finish starting: the tracker, then each worker
            return _descendants(pid)
        time.sleep(0.1)
    raise AssertionError(f"only {len(found)} of {count} descendants of {pid} appeared")


def _assert_all_die(pids: set[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _alive(pids)
    for pid in survivors:  # do not leave them behind for the next test either
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"orphans survived: {sorted(survivors)}"


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@linux_only
def test_kill9_of_the_healthcare_server_takes_its_workers_along(tmp_path: Path) -> None:
    server = start_server(
        python_module_argv(
            "bulkmover.emulator.healthcare", "--port", "0", "--data-dir", str(tmp_path / "hc"),
            "--workers", "2",
        ),
        name="healthcare",
    )  # fmt: skip
    try:
        # two pool workers and the resource tracker, started by the pool's warm-up
        pool = _wait_for_descendants(server.process.pid, 3)
    except BaseException:
        server.stop()
        raise
    server.kill()
    _assert_all_die(pool)


@linux_only
def test_kill9_of_the_launcher_takes_every_process_along(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*BULKMOVER, "emulator", "--gcs-port", "0", "--healthcare-port", "0",
         "--data-dir", str(tmp_path / "cloud")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # the two servers, the healthcare server's two workers and its resource tracker
        everything = _wait_for_descendants(proc.pid, 5)
    except BaseException:
        proc.terminate()
        proc.wait(30)
        raise
    proc.kill()
    proc.wait()
    _assert_all_die(everything)


def _emulator(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BULKMOVER, "emulator", *args], capture_output=True, text=True, timeout=timeout
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize(
    "flags", [["--gcs-port", "99999"], ["--healthcare-port", "-1"], ["--gcs-port", "http"]]
)
def test_a_port_out_of_range_is_refused_up_front(tmp_path: Path, flags: list[str]) -> None:
    start = time.monotonic()
    result = _emulator("--data-dir", str(tmp_path / "cloud"), *flags)
    assert result.returncode == 2
    assert "0..65535" in _one_line_error(result)
    assert time.monotonic() - start < 10
    assert not (tmp_path / "cloud").exists()  # nothing started


def test_a_data_dir_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for data_dir in (tmp_path / "afile", tmp_path / "afile" / "cloud"):
        line = _one_line_error(_emulator("--gcs-port", "0", "--data-dir", str(data_dir)))
        assert str(data_dir) in line


@linux_only
def test_a_data_dir_that_cannot_be_written_is_one_line_at_once(tmp_path: Path) -> None:
    """/proc/self exists but takes no new directories, even for root (chmod would not stop it)."""
    start = time.monotonic()
    result = _emulator("--gcs-port", "0", "--healthcare-port", "0", "--data-dir", "/proc/self")
    line = _one_line_error(result)
    assert "/proc/self/gcs" in line and "writable --data-dir" in line
    assert "did not start within" not in line
    assert time.monotonic() - start < 20


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_a_read_only_data_dir_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "ro"
    data_dir.mkdir(mode=0o555)
    try:
        line = _one_line_error(_emulator("--gcs-port", "0", "--data-dir", str(data_dir)))
    finally:
        data_dir.chmod(0o755)
    assert "writable --data-dir" in line


def test_a_server_that_dies_while_starting_says_why_at_once(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _emulator(
        "--host", "999.0.0.1", "--gcs-port", "0", "--data-dir", str(tmp_path / "cloud")
    )
    line = _one_line_error(result)
    assert "exited with code" in line and "999.0.0.1" in line
    assert time.monotonic() - start < 20


def test_the_healthcare_server_refuses_an_unwritable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = subprocess.run(
        python_module_argv(
            "bulkmover.emulator.healthcare", "--port", "0", "--data-dir", str(tmp_path / "afile")
        ),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "writable --data-dir" in _one_line_error(result)


@pytest.mark.parametrize(
    "text", ["gcs:\n  page_latency: " + "9" * 5000 + "\n", "[" * 3000 + "]" * 3000, "\udcff"]
)
def test_a_hostile_profile_is_one_line(tmp_path: Path, text: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = _emulator("--gcs-port", "0", "--data-dir", str(tmp_path), "--profile", str(profile))
    assert str(profile) in _one_line_error(result)
