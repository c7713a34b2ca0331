"""The one error hierarchy. Every message is written for the user and printed verbatim by the CLI.

A good message says what went wrong, where, and how to fix it, on one line.
"""

from __future__ import annotations


class BulkmoverError(Exception):
    """Base of every error the CLI reports as one line with a non-zero exit."""

    exit_code = 1


class ConfigError(BulkmoverError):
    """The YAML config (or a command-line value) is invalid."""

    exit_code = 2


class UsageError(BulkmoverError):
    """A command was called with values that cannot work."""

    exit_code = 2


class PlanError(BulkmoverError):
    """Planning cannot proceed (bad wildcard, missing bucket, nothing matched...)."""


class StateError(BulkmoverError):
    """The state file is missing, locked, corrupt or from an incompatible plan."""


class ApiError(BulkmoverError):
    """A remote API (Cloud Storage, Healthcare, Logging) answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        retriable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retriable = retriable
        self.retry_after = retry_after


class EmulatorError(BulkmoverError):
    """The local cloud could not start or was given bad settings."""


def first_user_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed task group: its first ``BulkmoverError`` (depth first,
    in the order the tasks failed), else its first leaf; the group itself if it has none.

    A fatal API error in one task cancels its siblings; the user wants that one line, not the
    group's traceback.
    """
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            leaves.append(exc)
    for exc in leaves:
        if isinstance(exc, BulkmoverError):
            return exc
    return leaves[0] if leaves else group


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space), cut to
    ``limit`` characters with "..." so a server's multi-line answer cannot break a message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
