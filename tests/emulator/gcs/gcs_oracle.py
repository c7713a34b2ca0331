"""Independent models of what objects.list answers: a full scan, and a glob matcher.

They share no code with the emulator and use other techniques (brace expansion and a memoised
backtracking matcher instead of regular expressions; a scan of every name instead of index
seeks), so agreement between the two is evidence, not tautology.
"""

from __future__ import annotations

from functools import cache


def expand_braces(pattern: str) -> list[str]:
    """``a{b,c{d,e}}f`` -> ``abf``, ``acdf``, ``acef`` (escapes kept, nesting allowed)."""
    depth = 0
    i = 0
    open_at = -1
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                open_at = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                inner = pattern[open_at + 1 : i]
                head, tail = pattern[:open_at], pattern[i + 1 :]
                return [
                    expanded
                    for alternative in _split_top_level(inner)
                    for expanded in expand_braces(head + alternative + tail)
                ]
        i += 1
    return [pattern]


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def glob_match(pattern: str, name: str) -> bool:
    return any(_match(p, name) for p in expand_braces(pattern))


def _match(pattern: str, name: str) -> bool:
    @cache
    def at(pi: int, ni: int) -> bool:
        if pi == len(pattern):
            return ni == len(name)
        c = pattern[pi]
        if c == "\\":
            return ni < len(name) and name[ni] == pattern[pi + 1] and at(pi + 2, ni + 1)
        if pattern.startswith("**", pi):
            end = pi + 2
            while end < len(pattern) and pattern[end] == "*":
                end += 1
            whole_segment = (pi == 0 or pattern[pi - 1] == "/") and pattern.startswith("/", end)
            if end == pi + 2 and whole_segment and at(pi + 3, ni):
                return True  # "**/" standing for zero segments
            return any(at(end, k) for k in range(ni, len(name) + 1))
        if c == "*":
            k = ni
            while True:
                if at(pi + 1, k):
                    return True
                if k == len(name) or name[k] == "/":
                    return False
                k += 1
        if ni == len(name):
            return False
        if c == "?":
            return name[ni] != "/" and at(pi + 1, ni + 1)
        if c == "[":
            matched, after = _class(pattern, pi, name[ni])
            return matched and at(after, ni + 1)
        return name[ni] == c and at(pi + 1, ni + 1)

    return at(0, 0)


def _class(pattern: str, pi: int, ch: str) -> tuple[bool, int]:
    j = pi + 1
    negate = pattern[j] in "!^"
    if negate:
        j += 1
    found = False
    first = True
    while first or pattern[j] != "]":
        first = False
        lo = pattern[j]
        if lo == "\\":
            j += 1
            lo = pattern[j]
        if pattern[j + 1] == "-" and pattern[j + 2] != "]":
            hi = pattern[j + 2]
            if hi == "\\":
                j += 1
                hi = pattern[j + 2]
            found = found or lo <= ch <= hi
            j += 3
        else:
            found = found or ch == lo
            j += 1
    return found != negate, j + 1


def list_names(
    names: list[str],
    *,
    prefix: str = "",
    delimiter: str = "",
    start_offset: str = "",
    end_offset: str = "",
    include_trailing_delimiter: bool = False,
    match_glob: str = "",
) -> tuple[list[str], list[str]]:
    """(items, prefixes) of a whole listing, by scanning every name."""
    items: list[str] = []
    prefixes: set[str] = set()
    for name in sorted(names):
        if not name.startswith(prefix) or name < start_offset:
            continue
        if end_offset and name >= end_offset:
            continue
        if match_glob and not glob_match(match_glob, name):
            continue
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            rolled = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            prefixes.add(rolled)
            if include_trailing_delimiter and rolled == name:
                items.append(name)
            continue
        items.append(name)
    return items, sorted(prefixes)
