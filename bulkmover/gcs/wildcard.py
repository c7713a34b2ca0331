"""The Healthcare API's wildcard semantics for ``gcsSource.uri``, validated and compiled once.

The rules (docs, and ../shared/spec/healthcare-dicom.md), all in the object part only:

* ``*`` matches zero or more characters other than ``/``;
* ``?`` matches exactly one character other than ``/``;
* ``**`` matches zero or more characters including ``/``; it must stand at the end of the path,
  optionally followed by a file extension (``.`` and at least one more character, no ``/``), and
  no other wildcard may appear anywhere in the path.

Every other character is literal (``[``, ``{``, ``\\``, ``+`` ... included). A character is a
Unicode code point. Three kinds follow from the rules: an exact object, a *single-level* pattern
(``*``/``?`` only, so every match has as many ``/`` as the pattern) and a *recursive* one
(``PREFIX**EXT``).

>>> w = parse_wildcard("gs://b/site/**.dcm")
>>> w.kind, w.literal_prefix, w.extension
(<Kind.RECURSIVE: 'recursive'>, 'site/', '.dcm')
>>> w.matches("site/2019/03/x.dcm"), w.matches("site/x.json")
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bulkmover.gcs.uri import GcsUri, InvalidUriError, parse_gcs_uri

WILDCARD_CHARS = frozenset("*?")
RECURSIVE = "**"


class Kind(StrEnum):
    EXACT = "exact"
    SINGLE_LEVEL = "single-level"
    RECURSIVE = "recursive"


def has_wildcard(text: str) -> bool:
    """True if ``text`` holds a character the API reads as a wildcard (``*`` or ``?``)."""
    return "*" in text or "?" in text


def first_wildcard(text: str) -> int:
    """Index of the first ``*`` or ``?`` in ``text``, or ``len(text)`` if there is none."""
    star, question = text.find("*"), text.find("?")
    found = [i for i in (star, question) if i >= 0]
    return min(found) if found else len(text)


@dataclass(frozen=True)
class Wildcard:
    """A validated import URI: what it is, what it can match, and a compiled matcher."""

    uri: GcsUri
    kind: Kind
    literal_prefix: str
    """The longest wildcard-free start of the object part: every match starts with it."""
    extension: str = ""
    """RECURSIVE only: the text after ``**`` (``.dcm``), possibly empty."""
    _match: Callable[[str], object] = field(repr=False, compare=False, default=lambda _: None)

    @property
    def bucket(self) -> str:
        return self.uri.bucket

    @property
    def pattern(self) -> str:
        """The object part, wildcards included."""
        return self.uri.name

    @property
    def components(self) -> tuple[str, ...]:
        """The object part split on ``/`` (a single-level match has exactly this many)."""
        return tuple(self.pattern.split("/"))

    @property
    def crosses_slash(self) -> bool:
        """Whether a match may hold more ``/`` than the pattern (only ``**`` does that)."""
        return self.kind is Kind.RECURSIVE

    def matches(self, name: str) -> bool:
        """Whether the API would import object ``name`` for this URI."""
        return self._match(name) is not None

    def __str__(self) -> str:
        return str(self.uri)


def parse_wildcard(text: str | GcsUri) -> Wildcard:
    """Validate an import URI per the API's rules; InvalidUriError names the rule and a fix."""
    uri = text if isinstance(text, GcsUri) else parse_gcs_uri(text)
    pattern = uri.name
    where = repr(str(uri))
    if RECURSIVE in pattern:
        at = pattern.index(RECURSIVE)
        head, extension = pattern[:at], pattern[at + len(RECURSIVE) :]
        if has_wildcard(head):
            raise InvalidUriError(
                f"{where}: '**' cannot be combined with another wildcard in the path; use"
                " PREFIX/**.EXT with a literal prefix"
            )
        if extension and (
            not extension.startswith(".")
            or len(extension) < 2
            or has_wildcard(extension)
            or "/" in extension
        ):
            raise InvalidUriError(
                f"{where}: '**' must stand at the end of the path, optionally followed by a file"
                " extension such as .dcm"
            )
        return Wildcard(uri, Kind.RECURSIVE, head, extension, _recursive_matcher(head, extension))
    if has_wildcard(pattern):
        prefix = pattern[: first_wildcard(pattern)]
        return Wildcard(uri, Kind.SINGLE_LEVEL, prefix, "", compile_matcher(pattern))
    return Wildcard(uri, Kind.EXACT, pattern, "", compile_matcher(pattern))


def _recursive_matcher(head: str, extension: str) -> Callable[[str], object]:
    """``HEAD**EXT`` without a regex (the lister calls it for every object it sees)."""
    least = len(head) + len(extension)

    def match(name: str) -> bool | None:
        ok = len(name) >= least and name.startswith(head) and name.endswith(extension)
        return True if ok else None

    return match


def compile_matcher(pattern: str) -> Callable[[str], object]:
    """``re.fullmatch`` of ``pattern`` (assumed valid); the result is truthy for a match."""
    return re.compile(_regex(pattern), re.DOTALL).fullmatch


def _regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith(RECURSIVE, i):
            out.append(".*")
            i += 2
            continue
        char = pattern[i]
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class SqlGlob:
    """The same match as a SQLite condition: ``name GLOB glob`` and, for single-level patterns,
    exactly ``slashes`` slashes in the name (GLOB's ``*`` and ``?`` also match ``/``; with as many
    slashes as the pattern's literal ones, none is left for a wildcard to take)."""

    glob: str
    slashes: int | None


def sql_glob(pattern: str) -> SqlGlob:
    """The SQLite GLOB form of a valid object pattern (``[`` is GLOB's only other special)."""
    glob = pattern.replace("[", "[[]")
    return SqlGlob(glob, None if RECURSIVE in pattern else pattern.count("/"))


def compile_component(component: str) -> Callable[[str], object]:
    """Matcher for one ``/``-free component of a single-level pattern."""
    if "/" in component:
        raise ValueError(f"component {component!r} holds '/'")
    return compile_matcher(component)
