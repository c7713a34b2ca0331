"""A check's result, and the report of all of them: one line each, ✓/✗, and a fix for each ✗."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkmover.errors import BulkmoverError


@dataclass(frozen=True)
class Check:
    """One thing ``doctor`` looked at. ``ok`` None: not checked (said why), does not fail."""

    name: str
    ok: bool | None
    detail: str
    fix: str | None = None

    @property
    def mark(self) -> str:
        return "✓" if self.ok else "–" if self.ok is None else "✗"

    def lines(self) -> list[str]:
        head = f"{self.mark} {self.name}: {self.detail}"
        return [head, f"    fix: {self.fix}"] if self.fix and self.ok is False else [head]

    def one_line(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix and self.ok is False else ""
        return f"{self.mark} {self.name}: {self.detail}{fix}"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.ok is False)

    def lines(self) -> list[str]:
        return [line for check in self.checks for line in check.lines()]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_json() for c in self.checks]}


class PreflightError(BulkmoverError):
    """``run``'s preflight found a check that fails: the run would not get far."""

    @classmethod
    def of(cls, report: Report) -> PreflightError:
        failed = " | ".join(c.one_line() for c in report.failed)
        return cls(
            f"preflight: {failed} — nothing was submitted; `bulkmover doctor CONFIG` shows every"
            " check, `bulkmover run --no-preflight` skips them"
        )
