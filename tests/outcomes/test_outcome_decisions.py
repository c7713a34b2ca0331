"""The per-file stage's decisions, case by case: no server, no sleep, an explicit ``now``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bulkmover.outcomes.decisions import (
    LogSettings,
    LogStep,
    LogView,
    Method,
    NarrowCosts,
    NarrowView,
    after_log_read,
    choose_narrowing,
    read_interval,
    worth_probing_early,
)

S = LogSettings(settle=30, deadline=600, first_interval=2, max_interval=60)


def view(failure: int, logged: int, grew_at: float | None = None, reads: int = 1) -> LogView:
    return LogView(failure=failure, logged=logged, ended_at=1000.0, grew_at=grew_at, reads=reads)


def test_every_failure_logged_settles_at_once() -> None:
    assert after_log_read(view(3, 3, grew_at=1001), 1001, S).step == LogStep.SETTLED


def test_more_entries_than_failures_still_settles() -> None:
    # A duplicated entry (Logging may deliver one twice) never blocks a shard.
    assert after_log_read(view(2, 3, grew_at=1001), 1001, S).step == LogStep.SETTLED


def test_a_short_log_is_read_again_with_doubling_backoff() -> None:
    first = after_log_read(view(5, 1, grew_at=1001, reads=1), 1001, S)
    later = after_log_read(view(5, 1, grew_at=1001, reads=3), 1010, S)
    assert first.step == later.step == LogStep.READ
    assert first.at == 1001 + 2 and later.at == 1010 + 8


def test_a_short_log_quiet_for_the_settle_time_is_taken_as_capped() -> None:
    decision = after_log_read(view(5, 1, grew_at=1001, reads=5), 1031, S)
    assert decision.step == LogStep.NARROW
    assert "4 of 5" in decision.reason and "capped" in decision.reason


def test_a_log_still_growing_is_not_narrowed() -> None:
    assert after_log_read(view(5, 2, grew_at=1029, reads=5), 1031, S).step == LogStep.READ


def test_an_empty_log_waits_for_the_deadline_not_the_settle_time() -> None:
    # Nothing logged yet may be ingestion delay: a first entry may still come.
    waiting = after_log_read(view(5, 0, reads=5), 1100, S)
    assert waiting.step == LogStep.READ
    assert waiting.at is not None and waiting.at <= 1000 + 600
    assert after_log_read(view(5, 0, reads=9), 1600, S).step == LogStep.NARROW


def test_resolution_off_gives_up_at_the_deadline_with_the_reason() -> None:
    off = LogSettings(settle=30, deadline=600, resolve=False)
    assert after_log_read(view(5, 1, grew_at=1001, reads=5), 1100, off).step == LogStep.READ
    decision = after_log_read(view(5, 1, grew_at=1001, reads=9), 1600, off)
    assert decision.step == LogStep.GIVE_UP and "resolve_failures" in decision.reason


@given(st.integers(0, 30))
def test_read_interval_doubles_up_to_its_cap(reads: int) -> None:
    interval = read_interval(reads, S)
    assert S.first_interval <= interval <= S.max_interval
    assert read_interval(reads + 1, S) >= interval


@given(
    failure=st.integers(1, 10_000),
    logged=st.integers(0, 10_000),
    quiet=st.floats(0, 2000),
    reads=st.integers(1, 20),
)
def test_a_read_always_leads_somewhere_before_the_deadline(
    failure: int, logged: int, quiet: float, reads: int
) -> None:
    now = 1000 + quiet
    decision = after_log_read(view(failure, logged, grew_at=1000, reads=reads), now, S)
    if decision.step == LogStep.READ:
        assert decision.at is not None and now < decision.at
        if logged == 0:
            assert decision.at <= 1000 + S.deadline
    else:
        assert decision.step in (LogStep.SETTLED, LogStep.NARROW)


COSTS = NarrowCosts(operation=30, operations_in_flight=8, stow_file=1, stow_in_flight=4)


def narrow(
    candidates: int, unaccounted: int, cap: int, *, probed: bool = False, child: bool = False
) -> Method:
    return choose_narrowing(NarrowView(candidates, unaccounted, cap, probed, child), COSTS)


def test_no_candidate_left_means_the_rest_is_in_the_store() -> None:
    assert narrow(0, 3, 1) == Method.NOTHING_LEFT


def test_many_candidates_for_few_failures_are_probed_first() -> None:
    assert narrow(4999, 49, 1) == Method.PROBE


def test_after_the_probe_the_candidates_are_split_or_stowed_never_probed_again() -> None:
    assert narrow(4999, 49, 1, probed=True) in (Method.SPLIT, Method.STOW)


def test_a_log_that_names_nothing_leaves_only_stow() -> None:
    assert narrow(40, 40, 0, probed=True) == Method.STOW


def test_a_child_no_larger_than_the_cap_is_stowed_not_split_again() -> None:
    # Importing it again would log exactly what it logged.
    assert narrow(1, 1, 1, probed=True, child=True) == Method.STOW


def test_slow_operations_make_stow_cheaper_for_a_handful() -> None:
    assert narrow(3, 3, 1, probed=True) == Method.STOW  # 1 s of STOW against 30 s of import


def test_fast_operations_make_child_imports_cheaper() -> None:
    fast = NarrowCosts(operation=0.2, operations_in_flight=8, stow_file=1, stow_in_flight=4)
    assert choose_narrowing(NarrowView(40, 40, 1, True, False), fast) == Method.SPLIT


@given(
    candidates=st.integers(0, 10_000),
    unaccounted=st.integers(0, 10_000),
    cap=st.integers(0, 1000),
    probed=st.booleans(),
    child=st.booleans(),
)
def test_narrowing_always_makes_progress(
    candidates: int, unaccounted: int, cap: int, probed: bool, child: bool
) -> None:
    method = narrow(candidates, unaccounted, cap, probed=probed, child=child)
    if candidates == 0:
        assert method == Method.NOTHING_LEFT
    if method == Method.PROBE:
        assert not probed and candidates > unaccounted
    if method == Method.SPLIT:
        # A split always makes children that can each be logged in full, and never a lone
        # child repeating its parent.
        assert cap >= 1 and not (child and candidates <= cap)


def test_a_short_log_is_read_again_when_its_settle_time_is_up() -> None:
    # Doubling alone would read at 1000 + 64 s; the settle ends at 1001 + 30 s.
    decision = after_log_read(view(5, 1, grew_at=1001, reads=7), 1020, S)
    assert decision.step == LogStep.READ and decision.at == 1031


def test_the_probe_starts_once_the_log_came_up_short_twice() -> None:
    assert not worth_probing_early(view(5, 1, reads=1))
    assert worth_probing_early(view(5, 1, reads=2))
    assert not worth_probing_early(view(5, 5, reads=2))
