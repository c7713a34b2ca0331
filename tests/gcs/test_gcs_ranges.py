"""Cut points of a name range being listed: always strictly inside it, whatever the names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.gcs.ranges import split_points

names = st.text(alphabet="ab09./ \x7fé\U0001f600", max_size=8)


@settings(max_examples=1000)
@given(
    st.sampled_from(["", "a", "a/", "ab/0"]),
    names,
    names,
    st.one_of(st.none(), names),
    st.integers(1, 20),
    st.booleans(),
)
def test_points_lie_strictly_inside_the_rest_of_the_range(
    floor: str, first: str, last: str, end: str | None, count: int, avoid_slash: bool
) -> None:
    first, last = floor + min(first, last), floor + max(first, last)
    if end is not None:
        end = floor + end
    points = split_points(first, last, end, floor, count, avoid_slash=avoid_slash)
    assert len(points) <= count
    assert points == sorted(set(points)), "strictly increasing"
    for point in points:
        assert point > last
        assert end is None or point < end
        assert point.startswith(floor)
        if avoid_slash:
            assert "/" not in point[len(floor) :] or "/" in last[len(floor) :]
        assert not any(0xD800 <= ord(c) < 0xE000 for c in point)


def test_galloping_from_the_page_scale() -> None:
    # The page spanned 0000001..0000003: no part smaller than MIN_PAGES (4) such pages.
    points = split_points("s/0000001/a", "s/0000003/b", None, "s/", 6)
    assert points == ["s/000001", "s/000002", "s/000004", "s/000008", "s/00001", "s/00002"]


def test_a_short_rest_is_not_cut() -> None:
    assert split_points("s/P1", "s/P1zz", "s/P2", "s/", 2) == []


def test_no_scale_to_gallop_from_falls_back_to_bisection() -> None:
    # Every character of 'zz' is at the top of its class: nothing to gallop to.
    assert split_points("s/za", "s/zz", None, "s/", 2) == ["s/zz?", "s/zz_"]


def test_no_room_no_points() -> None:
    assert split_points("a", "b", "b", "", 4) == []
    assert split_points("a/b", "a/b", None, "x/", 4) == []
