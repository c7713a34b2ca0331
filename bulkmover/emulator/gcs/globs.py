"""``matchGlob`` of objects.list: GCS glob patterns compiled to regular expressions.

Semantics (those of Cloud Storage's ``matchGlob``):

- ``*`` matches any run of characters within one path segment (never ``/``);
- ``**`` matches any run of characters, ``/`` included; as a whole segment (``a/**/b``,
  ``**/b``) it also matches zero segments, so ``a/**/b`` matches ``a/b`` and ``a/x/y/b``;
- ``?`` matches one character other than ``/``;
- ``[abc]``, ``[a-z]``, ``[!abc]`` (or ``[^abc]``) match one character of (not of) a set;
- ``{a,b}`` matches any of the comma-separated alternatives, which may hold globs themselves;
- ``\\`` escapes the next character.

The literal text before the first wildcard narrows the scanned name range, so a glob such as
``study/1234/**.dcm`` costs no more than a prefix listing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bulkmover.emulator.gcs.errors import GcsApiError

MAX_GLOB_LENGTH = 1024
_SPECIAL = set("*?[{\\")


@dataclass(frozen=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]
    literal_prefix: str

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


def bad_glob(pattern: str, why: str) -> GcsApiError:
    return GcsApiError(400, "invalid", f"Invalid matchGlob {pattern[:200]!r}: {why}.")


def compile_glob(pattern: str) -> Glob:
    """Compile ``pattern``; a malformed one is a 400 ``invalid`` error."""
    if not pattern:
        raise bad_glob(pattern, "it is empty")
    if len(pattern) > MAX_GLOB_LENGTH:
        raise bad_glob(pattern, f"it is longer than {MAX_GLOB_LENGTH} characters")
    source, end = _Translator(pattern).translate(0, in_braces=False)
    assert end == len(pattern)
    return Glob(pattern, re.compile(source, re.DOTALL), literal_prefix(pattern))


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


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern

    def translate(self, i: int, *, in_braces: bool) -> tuple[str, int]:
        """Translate from ``i`` up to the end (or, in braces, up to an unnested ``,``/``}``)."""
        p = self.p
        out: list[str] = []
        while i < len(p):
            c = p[i]
            if in_braces and c in ",}":
                return "".join(out), i
            if c == "\\":
                if i + 1 == len(p):
                    raise bad_glob(p, "it ends with a lone backslash")
                out.append(re.escape(p[i + 1]))
                i += 2
            elif c == "*":
                if i + 1 < len(p) and p[i + 1] == "*":
                    at_segment_start = i == 0 or p[i - 1] == "/"
                    if at_segment_start and i + 2 < len(p) and p[i + 2] == "/":
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
                cls, i = self._char_class(i)
                out.append(cls)
            elif c == "{":
                alternatives: list[str] = []
                i += 1
                while True:
                    alt, i = self.translate(i, in_braces=True)
                    alternatives.append(alt)
                    if i >= len(p):
                        raise bad_glob(p, "a '{' is never closed")
                    if p[i] == "}":
                        i += 1
                        break
                    i += 1  # the ','
                out.append("(?:" + "|".join(alternatives) + ")")
            else:
                out.append(re.escape(c))
                i += 1
        if in_braces:
            raise bad_glob(p, "a '{' is never closed")
        return "".join(out), i

    def _char_class(self, i: int) -> tuple[str, int]:
        p = self.p
        j = i + 1
        negate = j < len(p) and p[j] in "!^"
        if negate:
            j += 1
        members: list[str] = []
        first = True
        while True:
            if j >= len(p):
                raise bad_glob(p, "a '[' is never closed")
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
                    raise bad_glob(p, f"the range {c}-{hi} is reversed")
                members.append(_class_char(c) + "-" + _class_char(hi))
                j += 3
            else:
                members.append(_class_char(c))
                j += 1
            first = False
        return "[" + ("^" if negate else "") + "".join(members) + "]", j


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c
