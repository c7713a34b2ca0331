"""Narrowing one ``/``-free wildcard component to the names that start with a literal prefix.

The sharder cuts a directory's entries into groups by a shared literal start ``Y``. For the
group to be ONE import URI, the component pattern ``C`` must be rewritten to a pattern that
matches exactly the entries of ``C`` whose *core* starts with ``Y``:

* before the first ``*`` every character of ``C`` has a fixed width (literal or ``?``), so the
  first ``len(Y)`` characters of ``C`` are simply replaced by ``Y``;
* past the first ``*`` (``C = A*B``) the narrowed pattern is ``Y*B``. It matches an entry ``e``
  that starts with ``Y`` only if ``e[len(Y):]`` still matches ``*B``: a short entry whose
  ending ``B`` would overlap ``Y`` (``x.dcm`` against ``x.dc*.dcm``) is not matched.

So each entry has a *core*: its longest start that a narrowed pattern can fix while still matching
it. A narrowed pattern for ``Y`` matches entry ``e`` exactly when ``core(e)`` starts with ``Y``;
groups whose ``Y`` are prefix-free are therefore disjoint, and an entry whose core is exactly
``Y`` can always be addressed by its own literal name. A core also stops before the entry's first
``*`` or ``?``: the API would read those characters as wildcards.

>>> c = ComponentPattern("*.dcm")
>>> c.core("1.2.3.dcm"), c.narrow("1.2")
('1.2.3', '1.2*.dcm')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from bulkmover.gcs.wildcard import compile_component, first_wildcard, has_wildcard


@dataclass(frozen=True)
class ComponentPattern:
    """A ``/``-free single-level pattern (literals, ``?``, ``*``)."""

    text: str
    star: int = field(init=False)
    tail: str = field(init=False)

    def __post_init__(self) -> None:
        star = self.text.find("*")
        object.__setattr__(self, "star", star)
        object.__setattr__(self, "tail", self.text[star + 1 :] if star >= 0 else "")

    def core_length(self, entry: str) -> int:
        """Length of the core of ``entry`` (which must match this pattern)."""
        if self.star < 0:
            length = len(entry)
        elif not has_wildcard(self.tail):
            length = len(entry) - len(self.tail)
        else:
            length = len(entry) - self._shortest_tail_match(entry)
        return min(length, first_wildcard(entry))

    def core(self, entry: str) -> str:
        return entry[: self.core_length(entry)]

    def narrow(self, prefix: str) -> str:
        """The pattern matching exactly the entries whose core starts with ``prefix``."""
        if self.star < 0 or len(prefix) <= self.star:
            return prefix + self.text[len(prefix) :]
        return prefix + "*" + self.tail

    def _shortest_tail_match(self, entry: str) -> int:
        match = _tail_matcher(self.tail)
        for length in range(0, len(entry) - self.star + 1):
            if match(entry[len(entry) - length :]):
                return length
        raise ValueError(f"{entry!r} does not match {self.text!r}")


@functools.cache
def _tail_matcher(tail: str) -> Callable[[str], object]:
    return compile_component(tail)
