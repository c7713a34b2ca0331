"""Where to cut a name range that is still being listed, so idle workers can take a part.

A listing piece covers the names in ``[start, end)``; after a page whose names run from
``first`` to ``last``, the rest ``(last, end)`` can be cut at points ``M1 < M2 < ...``: the
running page chain keeps ``(last, M1)`` and new pieces take ``[M1, M2)``, ..., ``[Mk, end)``.
Correctness needs only ``last < M1`` and ``Mk < end``; the points are a guess at useful parts.

The guess starts at the page's own scale: the first position where ``first`` and ``last``
differ (names ``site/P0001..`` to ``site/P0008..`` vary at the 4th digit). It gallops from
``last``'s character there in steps of 1, 2, 4, 8... times ``MIN_PAGES`` pages (the page's own
span at that position is one page) within the character's class (digits up to ``9``, letters
up to ``z``), then one position up, and so on: pieces of doubling size right after the page,
where names most likely are, none smaller than a few pages (each piece costs a short last
page), and a last piece for everything else. A rest that looks shorter than that is not cut.
Each new piece, after its own first page, cuts itself the same way, so the chains multiply
within a few pages. When the page gives no scale to gallop from (its last characters are at the
top of their class), the points are spread between ``last`` and ``end`` at the first position
where they differ. A wrong guess only costs an empty page.

>>> split_points("site/P0001/x.dcm", "site/P0008/y.dcm", None, "site/", 4)
['site/P003', 'site/P006', 'site/P01', 'site/P02']
>>> split_points("site/P0001/x.dcm", "site/P0008/y.dcm", "site/P0009", "site/", 3)
[]
"""

from __future__ import annotations

import math
import os

MIN_PAGES = 4
"""The smallest part worth a piece of its own, in pages of the page just listed."""
_SURROGATES = range(0xD800, 0xE000)
_MAX = 0x110000
_SLASH = 0x2F


def split_points(
    first: str,
    last: str,
    end: str | None,
    floor: str,
    count: int,
    *,
    avoid_slash: bool = False,
) -> list[str]:
    """Up to ``count`` increasing strings ``M`` with ``last < M`` and ``M < end`` (if given).

    ``floor`` is the listed prefix (every name starts with it; points do too). With
    ``avoid_slash`` no point holds a ``/`` past ``floor`` (a delimiter listing must not cut
    inside a sub-directory, whose prefix would then be reported by two pieces).
    """
    if count <= 0 or (end is not None and last >= end) or not last.startswith(floor):
        return []
    points, reached_end = _gallop(first, last, end, floor, count, avoid_slash)
    if points or reached_end:
        return points  # nothing before ``end`` at MIN_PAGES or more: the rest is short
    return _bisect(last, end, floor, count, avoid_slash)


def _gallop(
    first: str, last: str, end: str | None, floor: str, count: int, avoid_slash: bool
) -> tuple[list[str], bool]:
    """Galloping points, and whether they ran into ``end``."""
    scale = max(len(os.path.commonprefix([first, last])), len(floor))
    points: list[str] = []
    # No part smaller than MIN_PAGES pages: the page itself spanned ``span`` characters at its
    # scale, and one character a position up is worth a whole class of them (10 for digits).
    minimum = 0.0
    for position in range(min(scale, len(last)), len(floor) - 1, -1):
        low = ord(last[position]) if position < len(last) else -1
        ceiling = _ceiling(low)
        if position == scale:
            span = low - ord(first[position]) if position < len(first) else 1
            minimum = MIN_PAGES * max(1, span)
        else:
            minimum /= ceiling - _floor(low)
        step = max(1, math.ceil(minimum))
        while low + step < ceiling and len(points) < count:
            char = low + step
            step *= 2
            if not _allowed(char, avoid_slash):
                continue
            point = last[:position] + chr(char)
            if end is not None and point >= end:
                return points, True
            points.append(point)
        if len(points) >= count:
            break
    return points, False


def _bisect(last: str, end: str | None, floor: str, count: int, avoid_slash: bool) -> list[str]:
    position = len(os.path.commonprefix([last, end])) if end is not None else len(floor)
    bounded = end is not None
    while position <= len(last):
        low = ord(last[position]) if position < len(last) else -1
        high = ord(end[position]) if bounded and end is not None else _ceiling(low)
        chars = _spread(low, high, count, avoid_slash)
        if chars:
            return [last[:position] + chr(c) for c in chars]
        # Nothing fits at this position: every point must keep last's character here, and past
        # it ``end`` no longer bounds anything (last[:position+1] < end[:position+1]).
        bounded = False
        position += 1
    return []


def _floor(char: int) -> int:
    """The first code point of the class of ``char`` (see ``_ceiling``)."""
    if char < 0:
        return 0x20
    for first, after in ((0x30, 0x3A), (0x41, 0x5B), (0x61, 0x7B)):
        if first <= char < after:
            return first
    return 0x20 if char < 0x7F else 0x7F


def _ceiling(char: int) -> int:
    """The first code point past the class of ``char`` (digits, letters, ASCII, everything)."""
    if char < 0:
        return 0x7F
    for first, after in ((0x30, 0x3A), (0x41, 0x5B), (0x61, 0x7B)):
        if first <= char < after:
            return after
    return 0x7F if char < 0x7F else _MAX


def _allowed(char: int, avoid_slash: bool) -> bool:
    return char >= 0x20 and char not in _SURROGATES and not (avoid_slash and char == _SLASH)


def _spread(low: int, high: int, count: int, avoid_slash: bool) -> list[int]:
    """Up to ``count`` code points strictly between ``low`` and ``high``, evenly spaced."""
    low = max(low, 0x1F)  # never cut at control characters
    room = high - low - 1
    if room <= 0:
        return []
    k = min(count, room)
    chars: list[int] = []
    for t in range(1, k + 1):
        c = low + round(t * (high - low) / (k + 1))
        if _allowed(c, avoid_slash) and low < c < high and (not chars or c > chars[-1]):
            chars.append(c)
    return chars
