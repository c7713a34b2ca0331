"""Cut the objects a source matches into shards: one import URI each, exact, few and large.

Every shard is one URI the API accepts and, evaluated with the API's semantics over the listing:
shards are pairwise disjoint, their union is exactly what the source matches, and each holds at
most ``max_objects`` objects and ``max_bytes`` bytes unless it is a single object.

How (one pass over the directories in path order, so every subtree is a contiguous run):

* A directory is closed when the pass leaves it. If its whole subtree fits, it stays one
  candidate for its parent (a parent that fits swallows it). If not, it is *split* on the spot:
  any ancestor is bigger still, so the decision is final.
* Recursive source (``P**.dcm``): a split directory ``d/`` becomes shards for its sub-directories
  that fit, and shards for the files directly in ``d/``: ``d/*.dcm``, or, when those are too many,
  name-prefix groups ``d/1.2.3*.dcm`` (``*`` never crosses ``/``), down to exact names. A
  sub-directory alone is ``d/c/**.dcm`` (a ``**`` shard owns its whole subtree, and its prefix is
  literal). Small sibling sub-directories whose files all lie at the same depth are grouped into
  one single-level shard, ``d/P00*/*/*/*.dcm`` (``*`` in directory components; it matches exactly
  those subtrees because every matched file under them has that depth), so a site of ten thousand
  small patient directories does not become ten thousand small operations.
* Single-level source (``site/*/x?.dcm``): every match has as many components as the pattern, so
  entries of a split directory (sub-directories or files) are grouped by a literal start of their
  component: ``site/P00*/x?.dcm``, ``site/P0012/x?.dcm``, ``site/P0012/x1.dcm``.
* Grouping by a literal start is a trie over each entry's *core* (see ``components``): the
  largest groups that fit win, so shards are few and large; prefix-free groups are disjoint.
* A name holding ``*`` or ``?`` can only be covered by a group whose literal start stops before
  that character; if it must be isolated, no URI can address it without matching others: it is
  reported as *unaddressable* (the caller decides whether that fails the plan).
* Names marked ``taken`` (already in shards that ran, on ``--replan``) are never covered by a new
  shard: any group holding one is split further.

Input: the listing as a ``Listing``: one aggregate row per directory (files directly in it, their
bytes, how many are taken), in path order, plus the files of one directory or under one prefix
on demand. Memory: the open directories along the current path, the child entries of those
directories, and, when a directory's own files must be split, those files. Deterministic: the
same listing gives the same shards.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple, Protocol

from bulkmover.gcs.wildcard import RECURSIVE, Kind, Wildcard, first_wildcard, has_wildcard
from bulkmover.planning.components import ComponentPattern


class Listed(NamedTuple):
    """One object the source matched, as the sharder sees it (a tuple: there are millions)."""

    name: str
    size: int
    taken: bool = False
    """Already in a shard that ran (replan): must stay out of every new shard."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_objects: int
    max_bytes: int

    def fits(self, objects: int, nbytes: int) -> bool:
        """A single object always fits, however large."""
        return objects <= 1 or (objects <= self.max_objects and nbytes <= self.max_bytes)


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """A planned shard: its import URI and what it is expected to hold."""

    uri: str
    objects: int
    bytes: int

    @property
    def pattern(self) -> str:
        """The object part of the URI."""
        return self.uri.split("/", 3)[3]

    @property
    def prefix(self) -> str:
        """The literal start of the object part: every object of the shard starts with it."""
        pattern = self.pattern
        return pattern[: first_wildcard(pattern)]


@dataclass
class Sharding:
    shards: list[ShardSpec]
    unaddressable: list[str]
    """Matched names that no shard covers because no URI can single them out."""

    @property
    def objects(self) -> int:
        return sum(s.objects for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)


class Listing(Protocol):
    """What the sharder reads: the names a source matched, grouped by directory."""

    def directories(self) -> Iterable[tuple[str, int, int, int]]:
        """``(directory, files, bytes, taken files)`` for every directory holding matched files
        directly (``directory`` ends with ``/``, or is ``""``), in path order."""
        ...

    def files(self, directory: str) -> Iterable[tuple[str, int, int]]:
        """``(name, size, taken)`` of the matched files directly in ``directory``."""
        ...

    def under(self, prefix: str) -> Iterable[tuple[str, int, int]]:
        """``(name, size, taken)`` of every matched name starting with ``prefix``."""
        ...


class MemoryListing:
    """A ``Listing`` over rows held in memory (tests, small listings)."""

    def __init__(self, rows: Iterable[tuple[str, int, int]]) -> None:
        self.rows: list[tuple[str, int, int]] = sorted(rows)
        self.names = [row[0] for row in self.rows]

    def directories(self) -> list[tuple[str, int, int, int]]:
        groups: dict[str, list[int]] = {}
        for name, size, taken in self.rows:
            group = groups.setdefault(name[: name.rfind("/") + 1], [0, 0, 0])
            group[0] += 1
            group[1] += size
            group[2] += int(bool(taken))
        return [(d, *groups[d]) for d in sorted(groups)]  # type: ignore[misc]

    def files(self, directory: str) -> list[tuple[str, int, int]]:
        return [r for r in self.under(directory) if "/" not in r[0][len(directory) :]]

    def under(self, prefix: str) -> list[tuple[str, int, int]]:
        start = bisect_left(self.names, prefix)
        end = start
        while end < len(self.names) and self.names[end].startswith(prefix):
            end += 1
        return self.rows[start:end]


def plan_shards(source: Wildcard, listing: Listing, limits: Limits) -> Sharding:
    """Shard the objects of ``listing`` (the names ``source`` matched)."""
    return _Sharder(source, limits, listing).run()


@dataclass(slots=True)
class _Entry:
    """A child of a directory: a sub-directory (aggregated) or a file."""

    comp: str
    objects: int
    bytes: int
    blocked: bool
    """Cannot be part of a group: split already, or taken."""
    depth: int | None = 0
    """How many ``/`` every matched name below the entry holds (None: not all the same)."""


@dataclass(slots=True)
class _Frame:
    """An open directory of the pass."""

    path: str
    comp: str
    depth: int
    objects: int = 0
    bytes: int = 0
    files: int = 0
    blocked: bool = False
    dirs: list[_Entry] = field(default_factory=list)
    shallowest: int | None = None
    deepest: int | None = None

    def reach(self, depth: int) -> None:
        """A matched name lies ``depth`` directories below this one."""
        if self.shallowest is None or depth < self.shallowest:
            self.shallowest = depth
        if self.deepest is None or depth > self.deepest:
            self.deepest = depth


class _Sharder:
    def __init__(self, source: Wildcard, limits: Limits, listing: Listing) -> None:
        self.source = source
        self.limits = limits
        self.listing = listing
        self.shards: list[ShardSpec] = []
        self.unaddressable: list[str] = []
        prefix = source.literal_prefix
        if source.kind is Kind.RECURSIVE:
            self.root = prefix[: prefix.rfind("/") + 1]
            start = prefix[len(self.root) :]
            self.root_files = ComponentPattern(start + "*" + source.extension)
            self.deep_files = ComponentPattern("*" + source.extension)
            self.root_dirs = ComponentPattern(start + "*")
            self.deep_dirs = ComponentPattern("*")
        else:
            self.root = ""
            self.levels = [ComponentPattern(c) for c in source.components]

    def run(self) -> Sharding:
        directories = self.listing.directories()
        if self.source.kind is Kind.EXACT:
            for _, files, nbytes, taken in directories:
                if files > taken:
                    self._emit(self.source.pattern, files - taken, nbytes)
            return self._result()
        root = _Frame(self.root, "", 0)
        stack = [root]
        skip = len(self.root)
        for directory, files, nbytes, taken in directories:
            top = self._enter(stack, directory[skip:].split("/")[:-1])
            top.objects += files
            top.bytes += nbytes
            top.files += files
            if taken:
                top.blocked = True
            top.reach(0)
        while len(stack) > 1:
            self._close(stack.pop(), stack[-1])
        if root.objects:
            if not root.blocked and self.limits.fits(root.objects, root.bytes):
                self._emit(self.source.pattern, root.objects, root.bytes)
            else:
                self._split(root)
        return self._result()

    def _enter(self, stack: list[_Frame], dirs: list[str]) -> _Frame:
        """Make ``stack`` the open directories ``dirs`` (closing those left); returns the top."""
        depth = 0
        while depth < len(stack) - 1 and depth < len(dirs) and stack[depth + 1].comp == dirs[depth]:
            depth += 1
        while len(stack) - 1 > depth:
            self._close(stack.pop(), stack[-1])
        for comp in dirs[depth:]:
            parent = stack[-1]
            stack.append(_Frame(parent.path + comp + "/", comp, parent.depth + 1))
        return stack[-1]

    def _result(self) -> Sharding:
        shards = sorted(self.shards, key=lambda s: (s.prefix, s.uri))
        return Sharding(shards, sorted(self.unaddressable))

    def _emit(self, pattern: str, objects: int, nbytes: int) -> None:
        self.shards.append(ShardSpec(f"gs://{self.source.bucket}/{pattern}", objects, nbytes))

    def _close(self, frame: _Frame, parent: _Frame) -> None:
        whole = not frame.blocked and self.limits.fits(frame.objects, frame.bytes)
        if not whole:
            self._split(frame)
            parent.blocked = True
        parent.objects += frame.objects
        parent.bytes += frame.bytes
        assert frame.shallowest is not None and frame.deepest is not None
        parent.reach(frame.shallowest + 1)
        parent.reach(frame.deepest + 1)
        depth = frame.shallowest if frame.shallowest == frame.deepest else None
        parent.dirs.append(_Entry(frame.comp, frame.objects, frame.bytes, not whole, depth))

    def _split(self, frame: _Frame) -> None:
        """Emit shards for everything under ``frame`` that is not blocked."""
        if has_wildcard(frame.path):
            for entry in frame.dirs:
                if not entry.blocked:
                    self._unaddressable_under(frame.path + entry.comp + "/")
            self.unaddressable += (n for n, _, taken in self._direct_files(frame) if not taken)
            return
        if self.source.kind is Kind.RECURSIVE:
            dirs = self.root_dirs if frame.depth == 0 else self.deep_dirs
            self._group(frame.dirs, dirs, frame.path, None)
            pattern = self.root_files if frame.depth == 0 else self.deep_files
            self._group(self._file_entries(frame), pattern, frame.path, "")
            return
        last = len(self.levels) - 1
        if frame.depth == last:
            self._group(self._file_entries(frame), self.levels[last], frame.path, "")
        else:
            rest = "/" + "/".join(self.source.components[frame.depth + 1 :])
            self._group(frame.dirs, self.levels[frame.depth], frame.path, rest)

    def _direct_files(self, frame: _Frame) -> Iterable[tuple[str, int, int]]:
        return self.listing.files(frame.path) if frame.files else ()

    def _file_entries(self, frame: _Frame) -> list[_Entry]:
        skip = len(frame.path)
        return [
            _Entry(name[skip:], 1, size, bool(taken))
            for name, size, taken in self._direct_files(frame)
        ]

    def _unaddressable_under(self, prefix: str) -> None:
        self.unaddressable += (name for name, _, taken in self.listing.under(prefix) if not taken)

    def _group(
        self, entries: list[_Entry], pattern: ComponentPattern, base: str, rest: str | None
    ) -> None:
        """Cover ``entries`` of directory ``base`` with prefix groups (a trie over cores).

        ``rest`` is what follows the component in every URI (``""`` for files, ``"/x?.dcm"`` for
        directories of a single-level source); None for the sub-directories of a recursive
        source, which need ``/**.EXT`` alone and a same-depth pattern in a group.
        """
        if not entries:
            return
        keyed = sorted(
            ((pattern.core(e.comp), e) for e in entries), key=lambda p: (p[0], p[1].comp)
        )
        cores = [core for core, _ in keyed]
        objects = [0, *accumulate(e.objects for _, e in keyed)]
        nbytes = [0, *accumulate(e.bytes for _, e in keyed)]
        blocked = [0, *accumulate(int(e.blocked) for _, e in keyed)]
        depths = [e.depth for _, e in keyed]
        # steps[i]: entries 0..i-1 hold this many depth changes (or unknown depths).
        steps = [
            0,
            *accumulate(
                int(d is None or i == 0 or d != depths[i - 1]) for i, d in enumerate(depths)
            ),
        ]
        todo = [("", 0, len(keyed))]
        while todo:
            start, lo, hi = todo.pop()
            count, size = objects[hi] - objects[lo], nbytes[hi] - nbytes[lo]
            if blocked[hi] == blocked[lo] and self.limits.fits(count, size):
                uri = self._group_uri(
                    keyed[lo][1],
                    pattern.narrow(start),
                    hi - lo,
                    steps[hi] - steps[lo + 1] == 0 and depths[lo] is not None,
                    base,
                    rest,
                )
                if uri is not None:
                    self._emit(uri, count, size)
                    continue
            # Every core in [lo, hi) starts with their common prefix: jump straight to it.
            start = os.path.commonprefix([cores[lo], cores[hi - 1]])
            i = lo
            while i < hi and len(cores[i]) == len(start):
                self._exact(keyed[i][1], base, rest)
                i += 1
            children: list[tuple[str, int, int]] = []
            while i < hi:
                child = start + cores[i][len(start)]
                n = len(child)
                end = bisect_right(cores, child, i, hi, key=lambda c, n=n: c[:n])  # type: ignore[misc]
                children.append((child, i, end))
                i = end
            todo.extend(reversed(children))

    def _group_uri(
        self,
        first: _Entry,
        narrowed: str,
        count: int,
        same_depth: bool,
        base: str,
        rest: str | None,
    ) -> str | None:
        """The URI of a group, or None if it has none (it must then be split further)."""
        if rest is not None:
            return base + narrowed + rest
        if count == 1 and not has_wildcard(first.comp):
            return base + first.comp + "/" + RECURSIVE + self.source.extension
        if same_depth and first.depth is not None:
            return base + narrowed + "/*" * (first.depth + 1) + self.source.extension
        return None

    def _exact(self, entry: _Entry, base: str, rest: str | None) -> None:
        """An entry that no group can hold with others: its own literal name."""
        if entry.blocked:
            return
        if has_wildcard(entry.comp):
            if rest == "":
                self.unaddressable.append(base + entry.comp)
            else:
                self._unaddressable_under(base + entry.comp + "/")
            return
        if rest is None:
            rest = "/" + RECURSIVE + self.source.extension
        self._emit(base + entry.comp + rest, entry.objects, entry.bytes)
