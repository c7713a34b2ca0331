"""Start emulator servers as child processes and wait for their ready line.

Shared by the ``bulkmover emulator`` launcher and the test fixtures, so both start servers the
same way: on a given (or free, port 0) loopback port, learning the bound URL from stdout.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from bulkmover.emulator.serving import parse_ready_line
from bulkmover.errors import EmulatorError


@dataclass
class RunningServer:
    name: str
    url: str
    process: subprocess.Popen[str]
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def _drain(self) -> None:
        """Keep reading the child's output so a chatty server never blocks on a full pipe."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL at once (crash tests)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (``PR_SET_PDEATHSIG``);
    False where that is not available (not Linux), so callers can fall back to polling."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig)) == 0)
    except (OSError, AttributeError):
        return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when its parent dies, so a killed test run or
    launcher never leaves emulators behind (elsewhere the parent's own stop() is the guard)."""
    die_with_parent(signal.SIGTERM)


def start_server(
    argv: list[str],
    *,
    name: str,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    ready_marker: str | None = None,
    url_template: str | None = None,
) -> RunningServer:
    """Spawn ``argv`` and wait until it prints its ready line (or ``ready_marker``).

    ``ready_marker``/``url_template`` serve foreign servers (fake-gcs-server) that print their own
    banner: when the marker appears, the URL is ``url_template``.
    """
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, **(env or {})},
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.2):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    break
                continue
            seen.append(line.rstrip())
            ready = parse_ready_line(line)
            if ready is not None:
                return _started(RunningServer(ready[0], ready[1], proc, deque(seen, maxlen=200)))
            if ready_marker is not None and ready_marker in line and url_template:
                return _started(RunningServer(name, url_template, proc, deque(seen, maxlen=200)))
    finally:
        sel.close()
    code = proc.poll()
    if code is not None:
        # It died while starting: say why at once, in its own words (its "error: ..." line, or
        # the last line of a traceback), not as a timeout.
        raise EmulatorError(
            f"the {name} emulator exited with code {code} while starting: {_last_words(seen)}"
        )
    proc.kill()
    proc.wait()
    tail = " | ".join(seen[-5:]) or "no output"
    raise EmulatorError(f"{name} did not start within {timeout:.0f}s: {tail}")


def _last_words(lines: list[str]) -> str:
    """The line that says why a server died: its last ``error:`` line, else its last line."""
    for line in reversed(lines):
        if line.startswith("error: "):
            return line
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "no output"


def _started(server: RunningServer) -> RunningServer:
    threading.Thread(target=server._drain, name=f"drain-{server.name}", daemon=True).start()
    return server


def python_module_argv(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
