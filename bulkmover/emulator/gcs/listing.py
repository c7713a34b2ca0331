"""objects.list over the ordered index: one page costs O(page), whatever the bucket holds.

Every parameter narrows one name range ``[lo, hi)`` of the primary key: ``prefix``,
``startOffset``/``endOffset``, the literal start of ``matchGlob`` and the page token. With a
``delimiter``, a name that rolls up into a prefix makes the scan jump past everything under that
prefix in one index seek, so a page of 1000 "directories" costs 1000 seeks, not a walk through
their contents.

Prefixes and items count together toward ``maxResults`` (at most 1000); an object that
``includeTrailingDelimiter`` reports both as an item and as a prefix counts once. The page token
encodes where the next page starts: just after the last name returned, or after the last prefix.
Objects that ``matchGlob`` rejects are invisible (they roll up into no prefix). A glob that rejects
long runs of names may end a page early, even empty, with a token: only a page without
``nextPageToken`` ends a listing, as on the real service.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from bulkmover.emulator.gcs.errors import GcsApiError, bad_parameter
from bulkmover.emulator.gcs.globs import Glob, compile_glob
from bulkmover.emulator.gcs.names import successor
from bulkmover.emulator.gcs.rows import ObjectRow
from bulkmover.emulator.gcs.store import Store

MAX_RESULTS = 1000
MAX_SCANNED_PER_PAGE = 20_000
GLOB_BATCH = 256
DELIMITER_FIRST_BATCH = 8
AFTER_SEEK_BATCH = 2


@dataclass(frozen=True)
class Cursor:
    """A position in name order: at ``name`` (inclusive) or just after it."""

    name: str
    inclusive: bool

    def encode(self) -> str:
        raw = json.dumps({"n": self.name, "i": self.inclusive}, ensure_ascii=False)
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw.decode())
            name, inclusive = data["n"], data["i"]
            if not isinstance(name, str) or not isinstance(inclusive, bool):
                raise ValueError(token)
        except (binascii.Error, ValueError, UnicodeDecodeError, KeyError, TypeError):
            raise GcsApiError(
                400,
                "invalid",
                f"Invalid pageToken {token[:100]!r}: it was not issued by a listing.",
            ) from None
        return cls(name, inclusive)

    def after(self, other: Cursor) -> bool:
        """Whether this position is strictly further than ``other``."""
        if self.name != other.name:
            return self.name > other.name
        return other.inclusive and not self.inclusive


@dataclass(frozen=True)
class ListQuery:
    prefix: str = ""
    delimiter: str = ""
    start_offset: str = ""
    end_offset: str = ""
    page_token: Cursor | None = None
    max_results: int = MAX_RESULTS
    include_trailing_delimiter: bool = False
    glob: Glob | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ListQuery:
        """Read the objects.list query parameters; bad values are 400 errors."""
        token = params.get("pageToken", "")
        glob = params.get("matchGlob", "")
        return cls(
            prefix=params.get("prefix", ""),
            delimiter=params.get("delimiter", ""),
            start_offset=params.get("startOffset", ""),
            end_offset=params.get("endOffset", ""),
            page_token=Cursor.decode(token) if token else None,
            max_results=parse_max_results(params.get("maxResults")),
            include_trailing_delimiter=parse_bool(
                "includeTrailingDelimiter", params.get("includeTrailingDelimiter")
            ),
            glob=compile_glob(glob) if glob else None,
        )


@dataclass
class ListPage:
    items: list[ObjectRow] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    next_page_token: str | None = None


def parse_max_results(value: str | None) -> int:
    """``maxResults``: absent or 0 means the default, larger than 1000 means 1000."""
    if value is None or value == "":
        return MAX_RESULTS
    try:
        n = int(value)
    except ValueError:
        raise bad_parameter("maxResults", value) from None
    if n < 0:
        raise bad_parameter("maxResults", value)
    return MAX_RESULTS if n == 0 else min(n, MAX_RESULTS)


def parse_bool(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise bad_parameter(name, value)
    return lowered == "true"


def name_range(q: ListQuery) -> tuple[Cursor, str | None]:
    """The ``[lo, hi)`` range of names this query (and page) can return."""
    lo = Cursor(q.prefix, True)
    for bound in (q.start_offset, q.glob.literal_prefix if q.glob else ""):
        if bound > lo.name:
            lo = Cursor(bound, True)
    if q.page_token is not None and q.page_token.after(lo):
        lo = q.page_token
    uppers = [successor(q.prefix), q.end_offset or None]
    if q.glob is not None:
        uppers.append(successor(q.glob.literal_prefix))
    bounded = [u for u in uppers if u is not None]
    return lo, min(bounded) if bounded else None


def list_page(store: Store, bucket_id: int, q: ListQuery) -> ListPage:
    """One page of objects.list."""
    page = ListPage()
    cursor, hi = name_range(q)
    if hi is not None and cursor.name >= hi:
        return page
    results = 0  # objects and prefixes; an object that is also its own prefix counts once
    exhausted = False
    scanned = 0
    # With a delimiter, rows under a prefix are skipped by a seek, so read small batches after a
    # seek and grow them while rows keep turning into items.
    hint = DELIMITER_FIRST_BATCH if q.delimiter else q.max_results + 1
    while results < q.max_results and scanned < MAX_SCANNED_PER_PAGE:
        want = q.max_results - results + 1
        limit = min(max(want, GLOB_BATCH) if q.glob else want, hint)
        rows = store.scan(bucket_id, cursor.name, cursor.inclusive, hi, limit)
        stopped_early = False
        for index, row in enumerate(rows):
            scanned += 1
            cursor = Cursor(row.name, False)
            if q.glob is not None and not q.glob.matches(row.name):
                if scanned >= MAX_SCANNED_PER_PAGE:
                    stopped_early = True
                    break
                continue
            results += 1
            rolled = _rolled_prefix(row.name, q)
            if rolled is None:
                page.items.append(row)
            else:
                page.prefixes.append(rolled)
                if q.include_trailing_delimiter and rolled == row.name:
                    page.items.append(row)
                nxt = successor(rolled)
                if nxt is None:
                    exhausted = stopped_early = True
                    break
                cursor = Cursor(nxt, True)
                if index + 1 < len(rows) and rows[index + 1].name.startswith(rolled):
                    stopped_early = True  # seek past the rest of this prefix
                    hint = AFTER_SEEK_BATCH
                    break
            if results >= q.max_results:
                stopped_early = True
                break
        if not stopped_early and len(rows) < limit:
            exhausted = True
            break
        if not stopped_early:
            hint = min(hint * 4, max(q.max_results + 1, GLOB_BATCH if q.glob else 0))
    if not exhausted and _has_more(store, bucket_id, cursor, hi, q):
        page.next_page_token = cursor.encode()
    return page


def _rolled_prefix(name: str, q: ListQuery) -> str | None:
    """The prefix ``name`` rolls up into under the delimiter, or None when it is an item."""
    if not q.delimiter:
        return None
    i = name.find(q.delimiter, len(q.prefix))
    return None if i < 0 else name[: i + len(q.delimiter)]


def _has_more(store: Store, bucket_id: int, cursor: Cursor, hi: str | None, q: ListQuery) -> bool:
    if q.glob is None:
        return store.first_name(bucket_id, cursor.name, cursor.inclusive, hi) is not None
    rows = store.scan(bucket_id, cursor.name, cursor.inclusive, hi, GLOB_BATCH)
    if len(rows) == GLOB_BATCH:
        return True  # more to look at: let the next page decide
    return any(q.glob.matches(r.name) for r in rows)
