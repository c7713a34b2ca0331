"""Child shards over some files of a shard: the planner's sharding, run over the shard's ledger.

The parent's ledger is the listing (every file its URI matched), the files to import again are
the ones not ``taken``, so each child URI matches exactly its own files among everything the
parent matched: valid, disjoint, exact objects at the end. A child URI is a refinement of the
parent's, so it matches nothing outside the parent either (objects added to the bucket since
planning aside, as for any shard). File-level retry and failure resolution both build on it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from bulkmover.gcs.wildcard import parse_wildcard
from bulkmover.planning.sharding import Limits, MemoryListing, plan_shards
from bulkmover.state.files import FileRef

NO_BYTE_LIMIT = 2**62


@dataclass(frozen=True)
class ChildShard:
    uri: str
    prefix: str
    files: list[FileRef]


@dataclass(frozen=True)
class Children:
    shards: list[ChildShard]
    unaddressable: list[FileRef]
    """Files no URI can single out (names holding ``*`` or ``?``): STOW-RS them instead."""


def child_shards(
    parent_uri: str,
    ledger: Iterable[FileRef],
    chosen: Collection[tuple[int, int, str]],
    max_objects: int,
    max_bytes: int = NO_BYTE_LIMIT,
) -> Children:
    """Shards of at most ``max_objects`` files covering exactly the ledger files whose key is in
    ``chosen`` (``FileRef.key``)."""
    source = parse_wildcard(parent_uri)
    refs = {ref.name: ref for ref in ledger}
    rows = [(name, ref.size, ref.key not in chosen) for name, ref in refs.items()]
    sharding = plan_shards(source, MemoryListing(rows), Limits(max(1, max_objects), max_bytes))
    wanted = sorted(name for name, ref in refs.items() if ref.key in chosen)
    shards: list[ChildShard] = []
    covered: set[str] = set()
    for spec in sharding.shards:
        matcher = parse_wildcard(spec.uri)
        files = [refs[name] for name in wanted if name.startswith(spec.prefix)]
        files = [ref for ref in files if matcher.matches(ref.name)]
        covered.update(ref.name for ref in files)
        shards.append(ChildShard(spec.uri, spec.prefix, files))
    left = [refs[name] for name in wanted if name not in covered]
    return Children(shards, left)
