"""Where to cut a name range that is still being listed, so idle workers can take a part.

A listing piece covers the names in ``[start, end)``; after a page whose last name is ``last``,
the rest ``(last, end)`` can be cut at points ``M1 < M2 < ...``: the running page chain keeps
``(last, M1)`` and new pieces take ``[M1, M2)``, ..., ``[Mk, end)``. Correctness needs only
``last < M1`` and ``Mk < end``; the points are a guess at even parts.

The guess works on characters: at the first position where ``last`` and ``end`` differ, spread
the points over the characters between them. With no ``end``, the top of the character's class
bounds the spread (a digit is followed by digits up to ``9``, a lowercase letter by letters up to
``z``). Where nothing lies between (``P`` and ``Q``), go one character deeper. A wrong guess only
costs an empty page: the next page of the chain cuts again with a tighter ``end``.

>>> split_points("site/P0123/x.dcm", None, "site/", 3)
['site/S', 'site/V', 'site/X']
>>> split_points("site/P0123/x.dcm", "site/Q", "site/", 3)
['site/P2', 'site/P5', 'site/P8']
"""

from __future__ import annotations

import os

_SURROGATES = range(0xD800, 0xE000)
_MAX = 0x110000


def split_points(
    last: str, end: str | None, floor: str, count: int, *, avoid_slash: bool = False
) -> list[str]:
    """Up to ``count`` increasing strings ``M`` with ``last < M`` and ``M < end`` (if given).

    ``floor`` is the listed prefix: points start with it when ``end`` is None. With
    ``avoid_slash`` no point holds a ``/`` past ``last``'s own (a delimiter listing must not cut
    inside a sub-directory, whose prefix would then be reported by two pieces).
    """
    if count <= 0 or (end is not None and last >= end):
        return []
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


def _ceiling(char: int) -> int:
    """The first code point past the class of ``char`` (digits, letters, ASCII, everything)."""
    if char < 0:
        return 0x7F
    for first, after in ((0x30, 0x3A), (0x41, 0x5B), (0x61, 0x7B)):
        if first <= char < after:
            return after
    return 0x7F if char < 0x7F else _MAX


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
        if c in _SURROGATES or (avoid_slash and c == 0x2F):
            continue
        if low < c < high and (not chars or c > chars[-1]):
            chars.append(c)
    return chars
