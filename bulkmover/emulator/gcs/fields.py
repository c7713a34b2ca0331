"""``fields``: the partial-response selector of Google JSON APIs.

``items(name,size),prefixes,nextPageToken`` keeps only those parts of a response, which makes
list pages several times smaller. Grammar: a comma-separated list of paths (``a/b/c``), each
optionally followed by a parenthesised sub-selection; ``*`` selects every key of an object.
Selections apply to every element of a list.
"""

from __future__ import annotations

from typing import Any

from bulkmover.emulator.gcs.errors import GcsApiError

# A selection maps a key to its sub-selection; None selects the whole value.
Selection = dict[str, "Selection | None"]


def bad_fields(spec: str, why: str) -> GcsApiError:
    return GcsApiError(400, "invalidParameter", f"Invalid field selection {spec[:200]!r}: {why}.")


def parse_fields(spec: str) -> Selection:
    """Parse a ``fields`` value; malformed syntax is a 400 error."""
    parser = _Parser(spec)
    selection = parser.selection()
    if parser.i != len(spec):
        raise bad_fields(spec, f"unexpected {spec[parser.i]!r} at position {parser.i}")
    return selection


def apply_fields(value: Any, selection: Selection | None) -> Any:
    """Keep only the selected parts of ``value`` (a JSON-like tree)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [apply_fields(v, selection) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "*" in selection:
        for key, v in value.items():
            out[key] = apply_fields(v, selection["*"])
    for key, sub in selection.items():
        if key != "*" and key in value:
            out[key] = apply_fields(value[key], sub)
    return out


def _merge(into: Selection, key: str, sub: Selection | None) -> None:
    if key not in into:
        into[key] = sub
        return
    existing = into[key]
    if existing is None or sub is None:
        into[key] = None
        return
    for k, v in sub.items():
        _merge(existing, k, v)


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.i = 0

    def selection(self) -> Selection:
        out: Selection = {}
        while True:
            path = self.path()
            sub: Selection | None = None
            if self.peek() == "(":
                self.i += 1
                sub = self.selection()
                if self.peek() != ")":
                    raise bad_fields(self.spec, "a '(' is never closed")
                self.i += 1
            for key in reversed(path[1:]):
                sub = {key: sub}
            _merge(out, path[0], sub)
            if self.peek() != ",":
                return out
            self.i += 1

    def path(self) -> list[str]:
        keys = [self.name()]
        while self.peek() == "/":
            self.i += 1
            keys.append(self.name())
        return keys

    def name(self) -> str:
        self.peek()
        start = self.i
        while self.i < len(self.spec) and (
            self.spec[self.i].isalnum() or self.spec[self.i] in "_-.*"
        ):
            self.i += 1
        if self.i == start:
            where = repr(self.spec[self.i]) if self.i < len(self.spec) else "the end"
            raise bad_fields(self.spec, f"expected a field name at {where}")
        return self.spec[start : self.i]

    def peek(self) -> str:
        while self.i < len(self.spec) and self.spec[self.i] == " ":
            self.i += 1
        return self.spec[self.i] if self.i < len(self.spec) else ""
