"""Matching lost starts to the operations they may have created: cases and invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.execution.ambiguity import (
    Anchor,
    Candidate,
    Start,
    clock_offset,
    match_starts,
    server_window,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ours(seconds: float) -> float:
    """Epoch seconds on our clock, ``seconds`` after T0."""
    return T0.timestamp() + seconds


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def start(sid: int, sent: float, settled: float | None, expected: int = 10) -> Start:
    return Start(sid, at(sent), None if settled is None else at(settled), expected)


def op(name: str, created: float, size: int | None = None, done: bool = False) -> Candidate:
    return Candidate(name, at(created), done, size)


def test_a_lost_start_with_one_operation_in_its_window_adopts_it() -> None:
    m = match_starts([start(1, 10, 11)], [op("a", 10.5)])
    assert m.adopted == {1: "a"} and not m.not_started and not m.undecided


def test_a_lost_start_with_no_operation_in_its_window_started_nothing() -> None:
    m = match_starts([start(1, 10, 11)], [op("a", 5.0), op("b", 30.0)])
    assert m.not_started == [1] and not m.adopted


def test_disjoint_windows_are_matched_exactly_whatever_the_order() -> None:
    starts = [start(1, 10, 11), start(2, 20, 21), start(3, 30, 31)]
    m = match_starts(starts, [op("c", 30.2), op("a", 10.9), op("b", 20.1)])
    assert m.adopted == {1: "a", 2: "b", 3: "c"}


def test_an_operation_only_one_window_holds_is_that_starts_even_if_the_start_sees_others() -> None:
    # 1 sees a and b; 2 sees only b; a can only be 1's, so b is 2's.
    m = match_starts([start(1, 0, 10), start(2, 8, 20)], [op("a", 2), op("b", 9)])
    assert m.adopted == {1: "a", 2: "b"}


def test_a_cluster_with_as_many_operations_as_starts_adopts_all_pairing_by_size() -> None:
    starts = [start(1, 0, None, expected=40), start(2, 0, None, expected=7)]
    m = match_starts(starts, [op("x", 1, size=7), op("y", 2, size=40)])
    assert m.adopted == {1: "y", 2: "x"} and not m.by_order


def test_a_cluster_whose_sizes_do_not_tell_is_paired_in_time_order_and_says_so() -> None:
    starts = [start(1, 0, None), start(2, 0.5, None)]
    m = match_starts(starts, [op("late", 2), op("early", 1)])
    assert m.adopted == {1: "early", 2: "late"} and m.by_order == {1, 2}


def test_a_cluster_with_fewer_operations_than_starts_stays_undecided() -> None:
    starts = [start(1, 0, None), start(2, 0, None), start(3, 0, None)]
    m = match_starts(starts, [op("a", 1), op("b", 2)])
    assert sorted(m.undecided) == [1, 2, 3] and sorted(m.orphans) == ["a", "b"]
    assert not m.adopted and not m.not_started


def test_the_clock_offset_is_bracketed_by_the_runs_own_operations() -> None:
    # Server clock 2.5 s ahead of ours; each operation created between its claim and answer.
    anchors = [
        Anchor(at(12.5 + 0.010), sent=ours(10.000), answered=ours(10.030)),
        Anchor(at(20.5 + 0.002), sent=ours(18.000), answered=ours(18.004)),
    ]
    lo, hi = clock_offset(anchors) or (0.0, 0.0)
    assert 2.5 - 0.03 <= lo <= 2.5 <= hi <= 2.5 + 0.01
    assert hi - lo < 0.01


def test_no_recorded_operation_or_contradicting_ones_give_no_offset() -> None:
    assert clock_offset([]) is None
    jumped = [
        Anchor(at(10.5), sent=10.0, answered=10.1),
        Anchor(at(30.0), sent=10.0, answered=10.1),
    ]
    assert clock_offset(jumped) is None


def test_a_window_on_our_clock_is_carried_to_the_servers_by_the_offset_or_the_skew() -> None:
    offset = (2.49, 2.51)
    earliest, latest = server_window(ours(10), ours(11), offset, timedelta(seconds=1))
    assert earliest == at(12.49) and latest == at(13.51)
    earliest, latest = server_window(ours(10), None, None, timedelta(seconds=1))
    assert earliest == at(9) and latest is None


def test_consecutive_lost_starts_are_told_apart_once_windows_are_on_the_servers_clock() -> None:
    # Two starts one after the other (one lane), both lost; only the second created an op.
    first = start(1, 10.000, 10.004)
    second = start(2, 10.005, 10.009)
    m = match_starts([first, second], [op("x", 10.007)])
    assert m.adopted == {2: "x"} and m.not_started == [1]


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
    m = match_starts(starts, ops)
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
    m = match_starts(spaced, moved)
    assert m.adopted == {sid: name for name, sid in truth.items()}
    assert sorted(m.not_started) == sorted(set(range(len(starts))) - set(truth.values()))
