"""The run's patience and what a failed poll means: pure decisions, no servers, no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkmover.errors import ApiError
from bulkmover.execution.decisions import PollAction, after_poll_error
from bulkmover.execution.patience import Patience, attempt_ok, attempt_what


def test_patience_runs_out_only_after_give_up_seconds_of_failures_without_a_success() -> None:
    patience = Patience(give_up_after=900, last_success=1000.0)
    assert patience.on_attempt(False, "operations.get: no answer (refused)", 1010.0)
    assert not patience.exhausted(1909.0)
    assert patience.exhausted(1910.0)
    trouble = patience.trouble
    assert trouble is not None and trouble.since == 1010.0 and trouble.failures == 1


def test_a_long_quiet_spell_is_not_counted_as_failing() -> None:
    """Nothing called for an hour, then one failure: the patience starts with the failure."""
    patience = Patience(give_up_after=900, last_success=0.0)
    patience.on_attempt(False, "storage.objects.list: no answer", 3600.0)
    assert not patience.exhausted(3601.0)
    assert patience.exhausted(4500.0)


def test_a_success_resets_patience_and_ends_the_trouble() -> None:
    patience = Patience(give_up_after=60, last_success=0.0)
    patience.on_attempt(False, "a", 10.0)
    assert not patience.on_attempt(False, "b", 20.0)  # still failing: no new event
    assert patience.on_attempt(True, "ok", 50.0)  # the trouble ended: one event
    assert patience.trouble is None
    assert not patience.exhausted(100.0)  # nothing failed since the success
    patience.on_attempt(False, "c", 100.0)
    assert not patience.exhausted(159.0)
    assert patience.exhausted(160.0)


def test_no_failure_never_exhausts_patience() -> None:
    """A run that makes no calls for a long while (all shards waiting) is not given up."""
    patience = Patience(give_up_after=10, last_success=0.0)
    assert not patience.exhausted(10_000.0)


def test_the_trouble_line_says_what_fails_and_for_how_long() -> None:
    patience = Patience(give_up_after=900, last_success=0.0)
    for at in (100.0, 101.0, 102.0):
        patience.on_attempt(False, "operations.get: no answer (ClientConnectorError)", at)
    trouble = patience.trouble
    assert trouble is not None
    line = trouble.line(now=225.0)
    assert "2m05s" in line and "3 attempts" in line and "operations.get" in line
    message = patience.give_up_message("http://127.0.0.1:9", now=1000.0)
    assert "http://127.0.0.1:9" in message and "give_up_after_seconds" in message
    assert "\n" not in message


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 50)), max_size=40))
def test_exhausted_exactly_when_failures_began_long_ago_with_no_success_since(
    attempts: list[tuple[bool, float]],
) -> None:
    patience = Patience(give_up_after=100, last_success=0.0)
    now, first_failure = 0.0, None
    for ok, step in attempts:
        now += step
        patience.on_attempt(ok, "x", now)
        if ok:
            first_failure = None
        elif first_failure is None:
            first_failure = now
        later = now + 60
        expected = first_failure is not None and later - first_failure >= 100
        assert patience.exhausted(later) == expected


def test_attempt_outcomes() -> None:
    assert attempt_ok(200) and attempt_ok(204)
    assert not attempt_ok(None) and not attempt_ok(403) and not attempt_ok(503)
    assert attempt_what("operations.get", None, "ClientConnectorError") == (
        "operations.get: no answer (ClientConnectorError)"
    )
    assert attempt_what("operations.get", 503, "down") == "operations.get: HTTP 503 down"


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (401, PollAction.STOP_RUN),
        (403, PollAction.STOP_RUN),
        (404, PollAction.LOST),
        (429, PollAction.RETRY),
        (500, PollAction.RETRY),
        (None, PollAction.RETRY),
    ],
)
def test_after_poll_error(status: int | None, action: PollAction) -> None:
    assert after_poll_error(ApiError("boom", status=status)) == action
