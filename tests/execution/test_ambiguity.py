"""Matching lost starts to the operations they may have created: cases and invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.execution.ambiguity import Candidate, Start, match_starts

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_SKEW = timedelta(0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def start(sid: int, sent: float, settled: float | None, expected: int = 10) -> Start:
    return Start(sid, at(sent), None if settled is None else at(settled), expected)


def op(name: str, created: float, size: int | None = None, done: bool = False) -> Candidate:
    return Candidate(name, at(created), done, size)


def test_a_lost_start_with_one_operation_in_its_window_adopts_it() -> None:
    m = match_starts([start(1, 10, 11)], [op("a", 10.5)], NO_SKEW)
    assert m.adopted == {1: "a"} and not m.not_started and not m.undecided


def test_a_lost_start_with_no_operation_in_its_window_started_nothing() -> None:
    m = match_starts([start(1, 10, 11)], [op("a", 5.0), op("b", 30.0)], NO_SKEW)
    assert m.not_started == [1] and not m.adopted


def test_disjoint_windows_are_matched_exactly_whatever_the_order() -> None:
    starts = [start(1, 10, 11), start(2, 20, 21), start(3, 30, 31)]
    m = match_starts(starts, [op("c", 30.2), op("a", 10.9), op("b", 20.1)], NO_SKEW)
    assert m.adopted == {1: "a", 2: "b", 3: "c"}


def test_an_operation_only_one_window_holds_is_that_starts_even_if_the_start_sees_others() -> None:
    # 1 sees a and b; 2 sees only b; a can only be 1's, so b is 2's.
    m = match_starts([start(1, 0, 10), start(2, 8, 20)], [op("a", 2), op("b", 9)], NO_SKEW)
    assert m.adopted == {1: "a", 2: "b"}


def test_a_cluster_with_as_many_operations_as_starts_adopts_all_pairing_by_size() -> None:
    starts = [start(1, 0, None, expected=40), start(2, 0, None, expected=7)]
    m = match_starts(starts, [op("x", 1, size=7), op("y", 2, size=40)], NO_SKEW)
    assert m.adopted == {1: "y", 2: "x"} and not m.by_order


def test_a_cluster_whose_sizes_do_not_tell_is_paired_in_time_order_and_says_so() -> None:
    starts = [start(1, 0, None), start(2, 0.5, None)]
    m = match_starts(starts, [op("late", 2), op("early", 1)], NO_SKEW)
    assert m.adopted == {1: "early", 2: "late"} and m.by_order == {1, 2}


def test_a_cluster_with_fewer_operations_than_starts_stays_undecided() -> None:
    starts = [start(1, 0, None), start(2, 0, None), start(3, 0, None)]
    m = match_starts(starts, [op("a", 1), op("b", 2)], NO_SKEW)
    assert sorted(m.undecided) == [1, 2, 3] and sorted(m.orphans) == ["a", "b"]
    assert not m.adopted and not m.not_started


def test_clock_skew_widens_the_window_on_both_sides() -> None:
    s = [start(1, 10, 11)]
    assert match_starts(s, [op("a", 9)], NO_SKEW).not_started == [1]
    assert match_starts(s, [op("a", 9)], timedelta(seconds=2)).adopted == {1: "a"}
    assert match_starts(s, [op("a", 12.5)], timedelta(seconds=2)).adopted == {1: "a"}


def test_an_operation_without_a_create_time_could_be_anyones() -> None:
    m = match_starts([start(1, 0, 1), start(2, 50, 51)], [Candidate("a", None, False, None)])
    assert sorted(m.undecided) == [1, 2]


# -- invariants over random histories ---------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Start], list[Candidate], dict[str, int]]:
    """Starts with windows; some created an operation inside their window (the truth)."""
    n = draw(st.integers(1, 8))
    starts, ops, truth = [], [], {}
    for sid in range(n):
        sent = draw(st.floats(0, 100))
        open_ended = draw(st.booleans())
        length = draw(st.floats(0.01, 20))
        settled = None if open_ended else sent + length
        expected = draw(st.integers(1, 5))
        starts.append(start(sid, sent, settled, expected))
        if draw(st.booleans()):
            created = sent + draw(st.floats(0, length if settled else 60))
            size = draw(st.sampled_from([None, expected]))
            name = f"op{sid}"
            ops.append(op(name, created, size))
            truth[name] = sid
    return starts, ops, truth


@settings(max_examples=400, deadline=None)
@given(histories())
def test_no_start_that_created_nothing_is_ever_given_an_operation(
    h: tuple[list[Start], list[Candidate], dict[str, int]],
) -> None:
    starts, ops, truth = h
    m = match_starts(starts, ops, NO_SKEW)
    started = set(truth.values())
    # Adopted shards really started (so none is marked imported without being imported) ...
    assert set(m.adopted) <= started
    # ... "not started" is never said of one that started (it would be imported twice) ...
    assert not set(m.not_started) & started
    # ... each operation goes to one shard, and every start gets exactly one answer.
    assert len(set(m.adopted.values())) == len(m.adopted)
    answered = [*m.adopted, *m.not_started, *m.undecided]
    assert sorted(answered) == sorted(s.shard_id for s in starts)


@settings(max_examples=200, deadline=None)
@given(histories())
def test_matches_are_exact_where_windows_do_not_overlap(
    h: tuple[list[Start], list[Candidate], dict[str, int]],
) -> None:
    starts, ops, truth = h
    spaced = [
        Start(s.shard_id, at(1000.0 * s.shard_id), at(1000.0 * s.shard_id + 1), s.expected)
        for s in starts
    ]
    moved = [Candidate(c.name, at(1000.0 * truth[c.name] + 0.5), c.done, c.size) for c in ops]
    m = match_starts(spaced, moved, NO_SKEW)
    assert m.adopted == {sid: name for name, sid in truth.items()}
    assert sorted(m.not_started) == sorted(set(range(len(starts))) - set(truth.values()))
