"""Child shards over some files of a shard: exact, disjoint, small enough, valid URIs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.gcs.wildcard import parse_wildcard
from bulkmover.outcomes.children import child_shards
from bulkmover.state.files import FileOutcome, FileRef

PARENT = "gs://pacs/site/**.dcm"

segment = st.text(alphabet="0123456789abc.", min_size=1, max_size=4)
names = st.lists(
    st.tuples(st.lists(segment, min_size=0, max_size=3), segment).map(
        lambda t: "site/" + "".join(d + "/" for d in t[0]) + t[1] + ".dcm"
    ),
    min_size=1,
    max_size=60,
    unique=True,
)


def refs_of(all_names: list[str]) -> list[FileRef]:
    return [
        FileRef(1, i, name.rsplit("/", 1)[-1], name, 10 + i, 1, FileOutcome.PENDING)
        for i, name in enumerate(sorted(all_names))
    ]


@settings(max_examples=150, deadline=None)
@given(names=names, data=st.data(), per_child=st.integers(1, 8))
def test_children_cover_exactly_the_chosen_files(
    names: list[str], data: st.DataObject, per_child: int
) -> None:
    ledger = refs_of(names)
    chosen = data.draw(st.sets(st.sampled_from([r.key for r in ledger])))
    built = child_shards(PARENT, ledger, chosen, per_child)
    covered: list[str] = []
    for child in built.shards:
        wildcard = parse_wildcard(child.uri)  # every URI is one the API accepts
        matched = {r.name for r in ledger if wildcard.matches(r.name)}
        # The URI matches exactly its files among everything the parent matched.
        assert matched == {r.name for r in child.files}, child.uri
        assert len(child.files) <= per_child or len(child.files) == 1
        covered += [r.name for r in child.files]
    assert len(covered) == len(set(covered))  # disjoint
    assert not built.unaddressable  # these names hold no wildcard characters
    assert set(covered) == {r.name for r in ledger if r.key in chosen}


def test_a_name_holding_a_wildcard_character_is_left_for_stow() -> None:
    ledger = refs_of(["site/a/x*.dcm", "site/a/x1.dcm", "site/a/x2.dcm"])
    chosen = {ledger[0].key}  # "site/a/x*.dcm" sorts first
    built = child_shards(PARENT, ledger, chosen, 1)
    assert [r.name for r in built.unaddressable] == ["site/a/x*.dcm"]
    assert all(not child.files for child in built.shards)


def test_one_failed_file_among_thousands_becomes_one_small_child() -> None:
    names = [f"site/{s:03d}/{i:04d}.dcm" for s in range(5) for i in range(1000)]
    ledger = refs_of(names)
    bad = next(r for r in ledger if r.name == "site/003/0417.dcm")
    built = child_shards(PARENT, ledger, {bad.key}, 10)
    assert [[r.name for r in c.files] for c in built.shards] == [["site/003/0417.dcm"]]
