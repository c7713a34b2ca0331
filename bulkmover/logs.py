"""structlog set-up: JSON lines to a file beside the state file, secrets never written.

The terminal belongs to the board, so log records go to the file only (and errors reach the
user as one line through the error hierarchy).
"""

from __future__ import annotations

import atexit
import re
from pathlib import Path
from typing import Any, TextIO

import structlog

from bulkmover.errors import StateError

_SECRET_KEYS = re.compile(r"token|authorization|password|secret|private_key|credential", re.I)
_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._\-~+/=]+", re.I)
# Google OAuth access tokens (ya29....) and a key file's private key, wherever they appear.
_ACCESS_TOKEN = r"ya29\.[A-Za-z0-9._\-]+"
_PRIVATE_KEY = r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]*(-----END [A-Z ]*PRIVATE KEY-----)?"
_TOKENS = re.compile(f"{_ACCESS_TOKEN}|{_PRIVATE_KEY}")

_open_file: TextIO | None = None


def redact_text(text: str) -> str:
    """``text`` with bearer tokens, access tokens and private keys replaced: for every line
    that reaches a terminal (error lines, the board's errors), as ``redact`` is for the log."""
    text = _BEARER.sub("Bearer [redacted]", text)
    return _TOKENS.sub("[redacted]", text)


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Drop values of secret-looking keys and bearer tokens inside strings."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def log_path_for(state_path: Path) -> Path:
    return state_path.with_name(state_path.stem + ".log.jsonl")


def configure(log_file: Path | None) -> None:
    """Send structlog records as JSON lines to ``log_file`` (None: discard them)."""
    global _open_file
    if _open_file is not None:
        _open_file.close()
        _open_file = None
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
        structlog.processors.dict_tracebacks,
        structlog.processors.JSONRenderer(),
    ]
    if log_file is None:
        structlog.configure(
            processors=processors,
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        return
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        _open_file = log_file.open("a", encoding="utf-8")
    except OSError as err:
        # Before anything runs: a run without its log would leave no trace of its warnings.
        raise StateError(
            f"cannot write the log file {log_file} ({err.strerror or err}): make it and its"
            " directory writable (an immutable flag shows in `lsattr`, a read-only mount in"
            " `mount`), or fix `state:` in the config (the log is written beside it)"
        ) from None
    structlog.configure(
        processors=processors,
        logger_factory=structlog.WriteLoggerFactory(file=_open_file),
        cache_logger_on_first_use=False,
    )


# At exit the log file is closed (its last lines flushed, no "unclosed file" warning) and any
# later record is discarded rather than written to a closed file.
atexit.register(configure, None)
