"""List what a source matches: many concurrent page chains over disjoint name ranges.

One serial chain of 1000-object pages takes minutes for a million objects on the real service
(0.15-0.3 s a page). So the name range is cut into *pieces* listed at once:

* a recursive source (``P**.dcm``) is listed from its literal prefix ``P`` without a delimiter;
  after every page, if workers are idle, the rest of the piece is cut (``ranges.split_points``)
  and the new pieces (``startOffset``/``endOffset``) are queued, so the number of chains grows to
  the concurrency within a few pages and long pieces keep being cut as they go;
* a single-level source (``site/*/x?.dcm``) cannot cross ``/``: each level is listed with the
  delimiter ``/``, so sub-trees are never listed; every sub-directory whose name matches that
  level's pattern becomes a piece of its own, and big levels are cut like above (never inside a
  sub-directory);
* an exact object is one request.

Matching is always done here with the API's semantics. ``matchGlob`` is an optimisation, never
trusted: it costs the service work per object, so it is sent only once the listing shows that
most objects do not match (then it saves most of the bytes), and only on chains that start
after that (a page token belongs to its query). What Cloud Storage makes of ``**`` not alone in
a path segment (``site/**.dcm``) is not settled by its documentation (gcloud-style wildcards
read ``dir**`` as ``dir*``), and a server reading it as ``*`` would silently never return the
files in sub-directories, which no local matching can recover. So the glob is written with
``**`` alone in its segment where the source allows (``site/**/*.dcm``, the same names), and
before any chain sends it, the server's reading is checked once per listing: names this
listing already saw and matched, one at least two directories below the source's prefix (and
one in the prefix's own directory, when seen), must each come back when listed with the glob
(``prefix`` = the name). If one does not, the glob is never sent and ``ListingStats`` says why
(``match_glob_note``, also logged). Matched objects go to ``sink`` page by page: nothing
accumulates in memory. ``ListingStats`` holds the counters the progress view reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from bulkmover.errors import ApiError, first_user_error
from bulkmover.gcs.ranges import split_points
from bulkmover.gcs.wildcard import Kind, Wildcard, compile_component, first_wildcard, has_wildcard

PAGE_SIZE = 1000
MAX_CUTS_PER_PAGE = 16
FIELDS = "items(name,size,generation),nextPageToken"
FIELDS_DELIMITED = "items(name,size,generation),prefixes,nextPageToken"
GLOB_SPECIAL = frozenset("[]{},\\")
GLOB_SAMPLE = 2000
GLOB_WORTH = 0.5
GLOB_PROOF_DEPTH = 2  # a probe name this many '/' below the prefix tells '**' from '*' and '*/'

log = logging.getLogger(__name__)


class ListedObject(NamedTuple):
    """A matched object as listed (a tuple: a million of them are made while listing)."""

    name: str
    size: int
    generation: int


@dataclass
class ListingStats:
    """Counters of a listing in progress (read by the progress view, written by the lister)."""

    source: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    seen: int = 0
    matched: int = 0
    matched_bytes: int = 0
    pages: int = 0
    pieces_queued: int = 0
    pieces_active: int = 0
    pieces_done: int = 0
    cuts: int = 0
    match_glob: str | None = None
    """The ``matchGlob`` sent once the server's reading was checked (None: never sent)."""
    match_glob_note: str = ""
    """Why ``matchGlob`` was not sent or stopped being sent, if it was worth sending."""
    glob_probes: int = 0

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def pieces_pending(self) -> int:
        return self.pieces_queued + self.pieces_active


class PageSource(Protocol):
    """One ``objects.list`` page (``StorageClient`` is one)."""

    async def list_page(self, bucket: str, params: dict[str, str]) -> dict[str, Any]: ...


Sink = Callable[[list[ListedObject]], None]


async def list_matches(
    source: Wildcard,
    pages: PageSource,
    sink: Sink,
    *,
    concurrency: int = 128,
    stats: ListingStats | None = None,
    match_glob: bool = True,
    page_size: int = PAGE_SIZE,
) -> ListingStats:
    """List every object ``source`` matches into ``sink``; returns the final counters.

    ``page_size`` is ``maxResults`` (the service caps it at 1000); tests make it small.
    """
    stats = stats or ListingStats(str(source))
    lister = _Lister(source, pages, sink, concurrency, stats, match_glob, page_size)
    try:
        await lister.run()
    finally:
        stats.finished = time.monotonic()
    return stats


@dataclass(slots=True)
class _Piece:
    prefix: str
    level: int | None
    """Single-level sources: index of the component this delimiter listing is at."""
    directory: str = ""
    """Single-level sources: the literal directory the level lives in."""
    start: str | None = None
    end: str | None = None


@dataclass(slots=True)
class _Scan:
    """What one page held inside its piece: counts, name range, matches."""

    end: str | None  # the piece's end when the page arrived
    entries: int = 0  # objects and prefixes inside the piece
    beyond: int = 0  # prefixes at or past ``end``
    overflow: bool = False  # an object at or past ``end``: the rest of the chain is not ours
    first: str | None = None
    last: str | None = None
    batch: list[ListedObject] = field(default_factory=list)


class _Lister:
    def __init__(
        self,
        source: Wildcard,
        pages: PageSource,
        sink: Sink,
        concurrency: int,
        stats: ListingStats,
        match_glob: bool,
        page_size: int,
    ) -> None:
        self.page_size = str(page_size)
        self.source = source
        self.pages = pages
        self.sink = sink
        self.concurrency = max(1, concurrency)
        self.stats = stats
        self.glob = self._glob() if match_glob else None
        self.glob_active = False
        self.glob_checked = False  # the server's reading was put to the test (once)
        self.deep_sample: tuple[int, str] | None = None  # (depth, name) of a deep match
        self.shallow_sample: str | None = None  # a match in the prefix's own directory
        self.components = source.components
        self.component_matchers = [compile_component(c) for c in self.components]
        self.queue: asyncio.Queue[_Piece | None] = asyncio.Queue()
        self.outstanding = 0
        self.idle = 0

    def _glob(self) -> str | None:
        """``matchGlob`` for a recursive source, when GCS glob syntax reads it the same way.

        ``P**E`` with ``P`` ending in ``/`` is sent as ``P**/*E``: the same names (``E`` holds
        no ``/``), with ``**`` alone in its segment, the form Google documents as crossing
        directories. Whatever the form, the server's reading is checked before it is used.
        """
        source = self.source
        if source.kind is not Kind.RECURSIVE or not source.extension:
            return None
        if any(c in GLOB_SPECIAL for c in source.pattern):
            return None
        prefix = source.literal_prefix
        if prefix == "" or prefix.endswith("/"):
            return f"{prefix}**/*{source.extension}"
        return source.pattern

    async def run(self) -> None:
        if self.source.kind is Kind.EXACT:
            await self._exact()
            return
        if self.source.kind is Kind.RECURSIVE:
            self._enqueue(_Piece(self.source.literal_prefix, None))
        else:
            self._enqueue(self._level("", 0))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(self._worker())
        except BaseExceptionGroup as failures:
            raise first_user_error(failures) from None

    async def _exact(self) -> None:
        name = self.source.pattern
        params = {"prefix": name, "maxResults": "1", "fields": FIELDS}
        page = await self.pages.list_page(self.source.bucket, params)
        self.stats.pages += 1
        items = page.get("items") or []
        self.stats.seen += len(items)
        if items and items[0]["name"] == name:
            self._deliver([_object(items[0])])

    def _level(self, directory: str, level: int) -> _Piece:
        """The piece listing ``level`` inside ``directory``, skipping literal directory levels."""
        last = len(self.components) - 1
        while level < last and not has_wildcard(self.components[level]):
            directory += self.components[level] + "/"
            level += 1
        component = self.components[level]
        return _Piece(directory + component[: first_wildcard(component)], level, directory)

    def _enqueue(self, piece: _Piece) -> None:
        self.outstanding += 1
        self.stats.pieces_queued += 1
        self.queue.put_nowait(piece)

    async def _worker(self) -> None:
        while True:
            self.idle += 1
            piece = await self.queue.get()
            self.idle -= 1
            if piece is None:
                return
            self.stats.pieces_queued -= 1
            self.stats.pieces_active += 1
            try:
                await self._list(piece)
            finally:
                self.stats.pieces_active -= 1
                self.stats.pieces_done += 1
                self.outstanding -= 1
                if self.outstanding == 0:
                    for _ in range(self.concurrency):
                        self.queue.put_nowait(None)

    async def _list(self, piece: _Piece) -> None:
        """Page through ``piece``, delivering matches and cutting its rest for idle workers."""
        await self._check_glob()
        params = self._params(piece)
        reported: set[str] = set()  # a server may repeat a prefix on several pages
        while True:
            page = await self._page(params)
            self.stats.pages += 1
            scan = self._scan_items(piece, page.get("items") or ())
            self.stats.seen += scan.entries
            if piece.level is not None:
                self._scan_prefixes(piece, page.get("prefixes") or (), scan, reported)
            if scan.batch:
                self._deliver(scan.batch)
            token = page.get("nextPageToken")
            if not token or scan.overflow or (scan.entries and scan.beyond == scan.entries):
                return
            params["pageToken"] = token
            if scan.first is not None and scan.last is not None:
                self._cut(piece, scan.first, scan.last, delimited=piece.level is not None)

    def _params(self, piece: _Piece) -> dict[str, str]:
        """The first page's query for ``piece`` (later pages add ``pageToken``)."""
        delimited = piece.level is not None
        params = {
            "prefix": piece.prefix,
            "maxResults": self.page_size,
            "fields": FIELDS_DELIMITED if delimited else FIELDS,
        }
        if delimited:
            params["delimiter"] = "/"
        if piece.start is not None:
            params["startOffset"] = piece.start
        if piece.end is not None:
            params["endOffset"] = piece.end
        if self.glob_active and self.glob is not None:
            params["matchGlob"] = self.glob
        return params

    def _scan_items(self, piece: _Piece, items: Iterable[dict[str, Any]]) -> _Scan:
        """The page's objects up to the piece's end (which may have shrunk since the request
        was sent: items come in name order, so the rest is another piece's)."""
        scan = _Scan(piece.end)
        end, batch, matches = scan.end, scan.batch, self.source.matches
        final_level = piece.level is None or piece.level == len(self.components) - 1
        for item in items:
            name = item["name"]
            if end is not None and name >= end:
                scan.overflow = True
                break
            if scan.first is None:
                scan.first = name
            scan.last = name
            if final_level and matches(name):
                batch.append(_object(item))
            scan.entries += 1
        if self.glob is not None and not self.glob_checked and batch:
            self._sample(batch)
        return scan

    def _sample(self, batch: list[ListedObject]) -> None:
        """Keep the deepest matched name and one in the prefix's own directory, the names the
        server's ``matchGlob`` reading is checked against (unfiltered pages only)."""
        skip = len(self.source.literal_prefix)
        for obj in batch:
            depth = obj.name.count("/", skip)
            if depth == 0:
                if self.shallow_sample is None:
                    self.shallow_sample = obj.name
            elif self.deep_sample is None or depth > self.deep_sample[0]:
                self.deep_sample = (depth, obj.name)

    def _scan_prefixes(
        self, piece: _Piece, prefixes: Iterable[str], scan: _Scan, reported: set[str]
    ) -> None:
        """A delimited page's sub-directories: each matching one below the last level becomes
        a piece of its own; all of them count toward the page's name range."""
        final_level = piece.level == len(self.components) - 1
        for prefix in prefixes:
            scan.entries += 1
            if scan.end is not None and prefix >= scan.end:
                scan.beyond += 1
                continue
            past = prefix[:-1] + "0"  # just after every name under this prefix
            scan.last = past if scan.last is None or past > scan.last else scan.last
            scan.first = prefix if scan.first is None or prefix < scan.first else scan.first
            if not final_level and prefix not in reported:
                reported.add(prefix)
                self._subdirectory(piece, prefix)

    def _worth_a_glob(self) -> bool:
        """Would ``matchGlob`` pay from now on? Yes once most objects seen did not match."""
        seen, matched = self.stats.seen, self.stats.matched
        return seen >= GLOB_SAMPLE and matched < seen * GLOB_WORTH

    async def _check_glob(self) -> None:
        """Once worth it, and once a match deep enough was seen: does the server return the
        matched names this listing already saw when the glob is sent? Only then is it sent.
        Chains starting meanwhile go without it (no worker waits for the check)."""
        glob = self.glob
        if glob is None or self.glob_checked or not self._worth_a_glob():
            return
        if self.deep_sample is None or self.deep_sample[0] < GLOB_PROOF_DEPTH:
            self.stats.match_glob_note = (
                f"not sent yet: no match {GLOB_PROOF_DEPTH} directories below "
                f"{self.source.literal_prefix!r} seen to check the server's reading of {glob!r}"
            )
            return
        self.glob_checked = True
        probes = [self.deep_sample[1]]
        if self.shallow_sample is not None:
            probes.append(self.shallow_sample)
        for name in probes:
            params = {"prefix": name, "maxResults": "1", "fields": FIELDS, "matchGlob": glob}
            self.stats.glob_probes += 1
            try:
                page = await self.pages.list_page(self.source.bucket, params)
            except ApiError as err:
                self._glob_off(f"the check of matchGlob {glob!r} failed ({err})")
                return
            items = page.get("items") or []
            if not items or items[0].get("name") != name:
                self._glob_off(
                    f"the server's matchGlob {glob!r} leaves out {name!r}, which the source "
                    f"matches (it reads '**' otherwise); listing without matchGlob"
                )
                return
        self.glob_active = True
        self.stats.match_glob = glob
        self.stats.match_glob_note = ""

    def _glob_off(self, why: str) -> None:
        self.glob = None
        self.glob_active = False
        self.stats.match_glob = None
        self.stats.match_glob_note = why
        log.warning("listing %s: %s", self.source, why)

    async def _page(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            return await self.pages.list_page(self.source.bucket, params)
        except ApiError as err:
            if err.status != 400 or "matchGlob" not in params:
                raise
        # A service that refuses the glob: list without it (matching is ours anyway).
        self._glob_off(f"the server refused matchGlob {params['matchGlob']!r} (400)")
        del params["matchGlob"]
        params.pop("pageToken", None)  # the token belonged to the query with the glob
        return await self.pages.list_page(self.source.bucket, params)

    def _subdirectory(self, piece: _Piece, prefix: str) -> None:
        assert piece.level is not None
        name = prefix[len(piece.directory) : -1]
        if self.component_matchers[piece.level](name):
            self._enqueue(self._level(prefix, piece.level + 1))

    def _cut(self, piece: _Piece, first: str, last: str, delimited: bool) -> None:
        """Give the rest of ``piece`` (after a page from ``first`` to ``last``) to idle workers."""
        idle = self.idle - self.queue.qsize()
        if idle <= 0:
            return
        count = min(idle, MAX_CUTS_PER_PAGE)
        points = split_points(first, last, piece.end, piece.prefix, count, avoid_slash=delimited)
        if not points:
            return
        for start, end in zip(points, [*points[1:], piece.end], strict=True):
            self._enqueue(_Piece(piece.prefix, piece.level, piece.directory, start, end))
        piece.end = points[0]
        self.stats.cuts += len(points)

    def _deliver(self, batch: list[ListedObject]) -> None:
        self.sink(batch)
        self.stats.matched += len(batch)
        self.stats.matched_bytes += sum(o.size for o in batch)


def _object(item: dict[str, Any]) -> ListedObject:
    return ListedObject(item["name"], int(item.get("size") or 0), int(item.get("generation") or 0))
