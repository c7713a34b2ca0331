"""How long a run keeps trying when no API call succeeds: a pure tracker with an injected clock.

Every attempt the clients make (each retry included) reports whether it succeeded. A run whose
calls have all failed for ``give_up_after`` seconds stops cleanly (operations already started
keep their names; the next ``run`` re-attaches to them) instead of polling a dead endpoint for
ever. While calls fail, ``trouble`` says what fails and since when, for the board and the
progress lines: a connection warning buried in the log file tells a watching operator nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkmover.units import format_duration

#: The events that tell how a run's API calls went (``status`` shows the last one).
API_EVENTS = ("api-failing", "api-ok", "gave-up")


@dataclass(frozen=True)
class Trouble:
    """API calls failing with no success since ``since`` (a ``time.time()`` instant)."""

    what: str  # the latest failure: "operations.get: connection refused"
    since: float
    failures: int  # failed attempts since the last success

    def line(self, now: float) -> str:
        return (
            f"API calls failing for {format_duration(max(0.0, now - self.since))}"
            f" ({self.failures:,} attempts, none succeeded): {self.what}"
        )


@dataclass
class Patience:
    """Fed every attempt's outcome; says when the run has waited long enough."""

    give_up_after: float
    last_success: float  # the run's start counts as one: patience starts with the run
    _trouble: Trouble | None = None

    def on_attempt(self, ok: bool, what: str, now: float) -> bool:
        """Record one attempt; True when this one changed whether calls are failing (the
        moment worth one event in the state file)."""
        if ok:
            self.last_success = max(self.last_success, now)
            changed = self._trouble is not None
            self._trouble = None
            return changed
        if self._trouble is None:
            self._trouble = Trouble(what, now, 1)
            return True
        self._trouble = Trouble(what, self._trouble.since, self._trouble.failures + 1)
        return False

    @property
    def trouble(self) -> Trouble | None:
        return self._trouble

    def exhausted(self, now: float) -> bool:
        """Calls have failed for ``give_up_after`` seconds with no success in between (counted
        from the first failure: a quiet spell with no calls at all is no failure)."""
        return self._trouble is not None and now - self._trouble.since >= self.give_up_after

    def give_up_message(self, where: str, now: float) -> str:
        since = self._trouble.since if self._trouble is not None else self.last_success
        waited = format_duration(max(0.0, now - since))
        what = self._trouble.what if self._trouble is not None else "no answer"
        return (
            f"gave up: no call to {where} has succeeded for {waited} ({what}); check the"
            " endpoint, the network and the credentials, then run again: operations already"
            " started are re-attached, nothing is repeated (patience: run.give_up_after_seconds)"
        )


def attempt_ok(status: int | None) -> bool:
    """An attempt succeeded when an answer came back that is not an error."""
    return status is not None and status < 400


def attempt_what(method: str, status: int | None, message: str | None) -> str:
    """One short phrase for a failed attempt: the method, then the status or the error."""
    if status is None:
        return f"{method}: no answer ({message or 'connection failed'})"
    return f"{method}: HTTP {status}" + (f" {message}" if message else "")


__all__ = ["API_EVENTS", "Patience", "Trouble", "attempt_ok", "attempt_what"]
