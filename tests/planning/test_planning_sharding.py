"""Sharding: every shard URI is evaluated with the wildcard matcher over the whole bucket.

Properties over random trees and sources: each shard is one valid URI; shards are pairwise
disjoint; their union is exactly the source's matches (less the names reported unaddressable, and
the names already taken by shards that ran); every shard is within the limits unless it holds a
single object; counts are what evaluation gives; the result is deterministic.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bulkmover.gcs.uri import GcsUri
from bulkmover.gcs.wildcard import Kind, Wildcard, has_wildcard, parse_wildcard
from bulkmover.planning.sharding import Limits, Listed, MemoryListing, Sharding, plan_shards

BUCKET = "b0b"


def run(
    source: str,
    sizes: dict[str, int],
    limits: Limits,
    taken: frozenset[str] = frozenset(),
) -> tuple[Wildcard, Sharding]:
    wildcard = parse_wildcard(GcsUri(BUCKET, source))
    rows = [Listed(n, sizes[n], n in taken) for n in sizes if wildcard.matches(n)]
    return wildcard, plan_shards(wildcard, MemoryListing(rows), limits)


def check(
    source: str,
    sizes: dict[str, int],
    limits: Limits,
    taken: frozenset[str] = frozenset(),
) -> Sharding:
    """Evaluate every shard over the bucket and assert the invariants; returns the sharding."""
    wildcard, sharding = run(source, sizes, limits, taken)
    matched = {n for n in sizes if wildcard.matches(n)}
    covered: set[str] = set()
    for shard in sharding.shards:
        shard_wildcard = parse_wildcard(shard.uri)  # raises if the API would refuse it
        assert shard_wildcard.bucket == BUCKET
        members = {n for n in sizes if shard_wildcard.matches(n)}
        assert members, shard
        assert not members & covered, f"{shard.uri} overlaps another shard"
        assert not members & taken, f"{shard.uri} covers names that are already taken"
        assert members <= matched, f"{shard.uri} matches names the source does not"
        assert shard.objects == len(members), shard
        assert shard.bytes == sum(sizes[n] for n in members), shard
        assert limits.fits(shard.objects, shard.bytes), shard
        assert all(n.startswith(shard.prefix) for n in members)
        if shard_wildcard.kind is Kind.RECURSIVE and shard.uri != str(wildcard):
            assert shard_wildcard.literal_prefix.endswith("/"), "'**' shards are directory-aligned"
        covered |= members
    unaddressable = set(sharding.unaddressable)
    assert len(unaddressable) == len(sharding.unaddressable)
    assert all(has_wildcard(n) for n in unaddressable)
    assert covered | unaddressable == matched - taken
    assert not covered & unaddressable
    if not any(has_wildcard(n) for n in matched):
        assert not unaddressable
    total = sum(sizes[n] for n in matched)
    if matched and not taken and limits.fits(len(matched), total):
        assert [s.uri for s in sharding.shards] == [str(wildcard)]
    assert run(source, sizes, limits, taken)[1] == sharding, "not deterministic"
    return sharding


# --- explicit cases --------------------------------------------------------------------------


def tree(*names: str, size: int = 1) -> dict[str, int]:
    return dict.fromkeys(names, size)


def uris(sharding: Sharding) -> list[str]:
    return [s.uri.removeprefix(f"gs://{BUCKET}/") for s in sharding.shards]


def test_small_source_is_one_shard_the_source_itself() -> None:
    names = tree("site/a/1.dcm", "site/a/b/2.dcm", "site/x.json")
    assert uris(check("site/**.dcm", names, Limits(10, 10**9))) == ["site/**.dcm"]


def test_a_split_directory_owns_whole_subtrees() -> None:
    # 'a/b/**.dcm' also matches 'a/b/c/x.dcm': the shard for a/b/ must own all of it.
    names = tree("a/b/1.dcm", "a/b/c/2.dcm", "a/b/c/d/3.dcm", "a/e/4.dcm", "a/5.dcm", "a/6.dcm")
    sharding = check("a/**.dcm", names, Limits(3, 10**9))
    assert uris(sharding) == ["a/*.dcm", "a/b/**.dcm", "a/e/**.dcm"]


def test_big_directory_splits_into_children_and_its_own_files() -> None:
    names = tree(*(f"a/b/{i}.dcm" for i in range(4)), *(f"a/f{i}.dcm" for i in range(3)))
    sharding = check("a/**.dcm", names, Limits(4, 10**9))
    assert uris(sharding) == ["a/*.dcm", "a/b/**.dcm"]


def test_too_many_files_in_one_directory_become_name_prefix_groups() -> None:
    names = tree(*(f"a/1.2.{i}.dcm" for i in range(30)), *(f"a/1.3.{i}.dcm" for i in range(5)))
    sharding = check("a/**.dcm", names, Limits(12, 10**9))
    assert "a/1.3*.dcm" in uris(sharding)
    assert all("/**" not in u for u in uris(sharding))


def test_short_name_whose_extension_overlaps_the_group_prefix_gets_its_own_shard() -> None:
    # 'a/x.dc*.dcm' would not match 'a/x.dcm' (the extension overlaps the prefix).
    names = tree("a/x.dcm", "a/x.dc1.dcm", "a/x.dc2.dcm", "a/x.dcx.dcm", "a/y.dcm")
    sharding = check("a/*.dcm", names, Limits(2, 10**9))
    assert "a/x.dcm" in uris(sharding)


def test_byte_limit_splits_and_single_huge_object_is_allowed() -> None:
    names = {"a/big.dcm": 10**12, "a/s1.dcm": 1, "a/s2.dcm": 1}
    sharding = check("a/**.dcm", names, Limits(100, 10))
    assert ("a/b*.dcm" in uris(sharding)) and ("a/s*.dcm" in uris(sharding))


def test_source_prefix_that_is_not_a_directory() -> None:
    names = tree("s/2019/a.dcm", "s/2019/b.dcm", "s/2020/c.dcm", "s/20x.dcm", "s/21/d.dcm")
    sharding = check("s/20**.dcm", names, Limits(2, 10**9))
    assert uris(sharding) == ["s/20*.dcm", "s/2019/**.dcm", "s/2020/**.dcm"]


def test_single_level_groups_directories_by_name_prefix() -> None:
    names = tree(*(f"st/P{p:02d}/x{i}.dcm" for p in range(20) for i in range(2)), "st/P00/y.dcm")
    sharding = check("st/*/x?.dcm", names, Limits(20, 10**9))
    assert "st/P0*/x?.dcm" in uris(sharding)
    assert all(u.endswith("/x?.dcm") or u.startswith("st/P") for u in uris(sharding))


def test_single_level_directory_too_big_splits_its_files() -> None:
    names = tree(*(f"st/2019/{i:03d}.dcm" for i in range(40)))
    sharding = check("st/2019/*.dcm", names, Limits(10, 10**9))
    assert "st/2019/00*.dcm" in uris(sharding)


def test_names_ending_with_slash_and_empty_components() -> None:
    names = tree("a/", "a/b/", "a//c", "a//", "a/b/c/", "a/x")
    check("a/**", names, Limits(1, 10**9))
    check("a/*", names, Limits(1, 10**9))
    check("a/*/", names, Limits(1, 10**9))


def test_wildcard_characters_in_names_are_covered_when_possible_else_reported() -> None:
    names = tree("a/x*y.dcm", "a/x?z.dcm", "a/xa.dcm", "a/b*/1.dcm", "a/b*/2.dcm", "a/c/3.dcm")
    assert check("a/**.dcm", names, Limits(10, 10**9)).unaddressable == []
    sharding = check("a/**.dcm", names, Limits(1, 10**9))
    assert sharding.unaddressable == ["a/b*/1.dcm", "a/b*/2.dcm", "a/x*y.dcm", "a/x?z.dcm"]


def test_taken_names_stay_out_of_new_shards() -> None:
    names = tree(*(f"a/{d}/{i}.dcm" for d in "bcd" for i in range(3)), "a/e.dcm")
    taken = frozenset(n for n in names if n.startswith("a/c/"))
    assert uris(check("a/**.dcm", names, Limits(100, 10**9), taken)) == [
        "a/*.dcm",
        "a/b/**.dcm",
        "a/d/**.dcm",
    ]


def test_exact_source() -> None:
    assert uris(check("a/b.dcm", tree("a/b.dcm", "a/b.dcmx"), Limits(1, 1))) == ["a/b.dcm"]


def test_deep_paths() -> None:
    deep = "/".join(f"d{i}" for i in range(60))
    names = tree(*(f"{deep}/{i}.dcm" for i in range(5)), "x/y.dcm")
    check("**.dcm", names, Limits(2, 10**9))


@pytest.mark.parametrize("char", list("+()[]$^.{}|\\ é"))
def test_metacharacters_in_names(char: str) -> None:
    names = tree(*(f"a{char}/{char}{i}{char}.dcm" for i in range(6)), f"a{char}.dcm")
    check(f"a{char}/**.dcm", names, Limits(2, 10**9))
    check("**.dcm", names, Limits(2, 10**9))
    check(f"a{char}/*.dcm", names, Limits(2, 10**9))


# --- properties over random trees -------------------------------------------------------------

component = st.text(alphabet="ab1.*?", max_size=3)
file_name = st.builds(lambda stem, ext: stem + ext, component, st.sampled_from(["", ".dcm", ".d"]))
paths = st.builds(lambda dirs, f: "/".join([*dirs, f]), st.lists(component, max_size=3), file_name)
paths = paths.filter(bool)  # Cloud Storage names hold at least one character
SOURCES = [
    "**", "**.dcm", "a/**.dcm", "a**", "a/b**.dcm", "ab**", "*/*.dcm", "*", "a/*", "*/?*",
    "a*/*.dcm", "?/*", "*.dcm", "*/a/*", "*/*/*", "a?/*", "a1/**", "b/1.dcm", "*a*.d", "?*?/*1",
]  # fmt: skip


@st.composite
def sources(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(SOURCES))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(paths, st.integers(0, 9), max_size=40),
    sources(),
    st.integers(1, 6),
    st.integers(1, 40),
    st.data(),
)
@example({"a/x.dcm": 1, "a/x.dc1.dcm": 1, "a/x.dcm.dcm": 1}, "a/**.dcm", 1, 100, None)
def test_random_trees(
    sizes: dict[str, int], source: str, max_objects: int, max_bytes: int, data: st.DataObject
) -> None:
    taken: frozenset[str] = frozenset()
    if data is not None and data.draw(st.booleans()):
        taken = frozenset(data.draw(st.sets(st.sampled_from(sorted(sizes)))) if sizes else set())
    check(source, sizes, Limits(max_objects, max_bytes), taken)
