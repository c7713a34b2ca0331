"""``matchGlob`` of objects.list: GCS glob patterns compiled to regular expressions.

Semantics (those of Cloud Storage's ``matchGlob``):

- ``*`` matches any run of characters within one path segment (never ``/``);
- ``**`` matches any run of characters, ``/`` included; as a whole segment (``a/**/b``,
  ``**/b``) it also matches zero segments, so ``a/**/b`` matches ``a/b`` and ``a/x/y/b``;
  how ``**`` reads when it is not alone in its segment (``a/**.dcm``) is not settled by
  Google's documentation, so it is a knob (``DoubleStar``): ``"any"`` as above,
  ``"segment"`` a single ``*`` (the reading gcloud-style wildcards document: ``dir**`` is
  ``dir*``), ``"star"`` a single ``*`` everywhere (a glob without globstar);
- ``?`` matches one character other than ``/``;
- ``[abc]``, ``[a-z]``, ``[!abc]`` (or ``[^abc]``) match one character of (not of) a set;
- ``{a,b}`` matches any of the comma-separated alternatives, which may hold globs themselves;
- ``\\`` escapes the next character.

The literal text before the first wildcard narrows the scanned name range, so a glob such as
``study/1234/**.dcm`` costs no more than a prefix listing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from bulkmover.emulator.gcs.errors import GcsApiError

MAX_GLOB_LENGTH = 1024
MAX_ALTERNATIVES = 256
_SPECIAL = set("*?[{\\")
DoubleStar = Literal["any", "segment", "star"]


@dataclass(frozen=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]
    literal_prefix: str

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


def bad_glob(pattern: str, why: str) -> GcsApiError:
    return GcsApiError(400, "invalid", f"Invalid matchGlob {pattern[:200]!r}: {why}.")


def compile_glob(pattern: str, double_star: DoubleStar = "any") -> Glob:
    """Compile ``pattern``; a malformed one is a 400 ``invalid`` error.

    ``double_star`` is the reading of ``**`` (see the module's docstring).

    Braces are expanded first (``a{b,c}d`` is ``abd`` or ``acd``), so that whether ``**`` stands
    for a whole segment is decided in each alternative, as a reader of the pattern expects.
    """
    if not pattern:
        raise bad_glob(pattern, "it is empty")
    if len(pattern) > MAX_GLOB_LENGTH:
        raise bad_glob(pattern, f"it is longer than {MAX_GLOB_LENGTH} characters")
    alternatives = expand_braces(pattern)
    sources = [_translate(pattern, alternative, double_star) for alternative in alternatives]
    source = sources[0] if len(sources) == 1 else "(?:" + "|".join(sources) + ")"
    prefix = os.path.commonprefix([literal_prefix(a) for a in alternatives])
    return Glob(pattern, re.compile(source, re.DOTALL), prefix)


def expand_braces(pattern: str) -> list[str]:
    """The brace-free alternatives of ``pattern`` (nested braces allowed, escapes kept)."""
    out: list[str] = []
    pending = [pattern]
    while pending:
        current = pending.pop()
        found = _first_group(pattern, current)
        if found is None:
            out.append(current)
            continue
        start, end, parts = found
        pending.extend(current[:start] + part + current[end + 1 :] for part in reversed(parts))
        if len(out) + len(pending) > MAX_ALTERNATIVES:
            raise bad_glob(pattern, f"its braces expand to more than {MAX_ALTERNATIVES} patterns")
    return out


def _first_group(pattern: str, text: str) -> tuple[int, int, list[str]] | None:
    """(index of the first top-level '{', index of its '}', the alternatives inside)."""
    depth = 0
    start = -1
    parts: list[str] = []
    part_start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
                part_start = i + 1
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                parts.append(text[part_start:i])
                return start, i, parts
        elif c == "," and depth == 1:
            parts.append(text[part_start:i])
            part_start = i + 1
        i += 1
    if depth > 0:
        raise bad_glob(pattern, "a '{' is never closed")
    return None


def literal_prefix(pattern: str) -> str:
    """The text every match starts with: the pattern up to its first wildcard, unescaped."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in _SPECIAL:
            break
        out.append(c)
        i += 1
    return "".join(out)


def _translate(pattern: str, p: str, double_star: DoubleStar = "any") -> str:
    """The regular expression of one brace-free alternative ``p`` of ``pattern``."""
    out: list[str] = []
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            if i + 1 == len(p):
                raise bad_glob(pattern, "it ends with a lone backslash")
            out.append(re.escape(p[i + 1]))
            i += 2
        elif c == "*":
            if i + 1 < len(p) and p[i + 1] == "*":
                at_segment_start = i == 0 or p[i - 1] == "/"
                alone = at_segment_start and (i + 2 == len(p) or p[i + 2] == "/")
                if double_star == "star" or (double_star == "segment" and not alone):
                    out.append("[^/]*")  # a single '*'
                    i += 2
                    while i < len(p) and p[i] == "*":
                        i += 1
                elif at_segment_start and i + 2 < len(p) and p[i + 2] == "/":
                    out.append("(?:.*/)?")
                    i += 3
                else:
                    out.append(".*")
                    i += 2
                    while i < len(p) and p[i] == "*":
                        i += 1
            else:
                out.append("[^/]*")
                i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            cls, i = _char_class(pattern, p, i)
            out.append(cls)
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _char_class(pattern: str, p: str, i: int) -> tuple[str, int]:
    j = i + 1
    negate = j < len(p) and p[j] in "!^"
    if negate:
        j += 1
    members: list[str] = []
    first = True
    while True:
        if j >= len(p):
            raise bad_glob(pattern, "a '[' is never closed")
        c = p[j]
        if c == "]" and not first:
            j += 1
            break
        if c == "\\" and j + 1 < len(p):
            c = p[j + 1]
            j += 1
        if j + 2 < len(p) and p[j + 1] == "-" and p[j + 2] != "]":
            hi = p[j + 2]
            if hi == "\\" and j + 3 < len(p):
                hi = p[j + 3]
                j += 1
            if ord(hi) < ord(c):
                raise bad_glob(pattern, f"the range {c}-{hi} is reversed")
            members.append(_class_char(c) + "-" + _class_char(hi))
            j += 3
        else:
            members.append(_class_char(c))
            j += 1
        first = False
    return "[" + ("^" if negate else "") + "".join(members) + "]", j


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c
