"""Wildcard parsing and matching: the spec's cases, then properties against an oracle."""

from __future__ import annotations

import sqlite3
from functools import cache

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulkmover.errors import PlanError
from bulkmover.gcs.uri import GcsUri, parse_gcs_uri
from bulkmover.gcs.wildcard import Kind, parse_wildcard, sql_glob


# The oracle: an independent reading of the API's wildcard rules (a memoised backtracking
# matcher written from the spec text, no regex, no code shared with bulkmover.gcs.wildcard).
def oracle_matches(pattern: str, name: str) -> bool:
    @cache
    def match(p: int, n: int) -> bool:
        if p == len(pattern):
            return n == len(name)
        if pattern[p : p + 2] == "**":
            return any(match(p + 2, k) for k in range(n, len(name) + 1))
        char = pattern[p]
        if char == "*":
            k = n
            while True:
                if match(p + 1, k):
                    return True
                if k == len(name) or name[k] == "/":
                    return False
                k += 1
        if n == len(name):
            return False
        if char == "?":
            return name[n] != "/" and match(p + 1, n + 1)
        return name[n] == char and match(p + 1, n + 1)

    return match(0, 0)


def oracle_is_valid(pattern: str) -> bool:
    """The spec's validity rules for the object part, restated independently."""
    if not pattern or "\n" in pattern or "\r" in pattern:
        return False
    count = pattern.count("**")
    if count == 0:
        return True
    head, _, tail = pattern.partition("**")
    if "*" in head or "?" in head:
        return False
    if tail == "":
        return True
    return tail[0] == "." and len(tail) > 1 and not any(c in tail for c in "*?/")


METACHARACTERS = "+()[]$^.{}|\\"


@pytest.mark.parametrize(
    ("uri", "name", "expected"),
    [
        # The spec's own examples.
        ("gs://b0b/DIR/Example*.dcm", "DIR/Example.dcm", True),
        ("gs://b0b/DIR/Example*.dcm", "DIR/Example22.dcm", True),
        ("gs://b0b/DIR/Example*.dcm", "DIR/sub/Example1.dcm", False),
        ("gs://b0b/DIR/**.dcm", "DIR/x.dcm", True),
        ("gs://b0b/DIR/**.dcm", "DIR/a/b/c/x.dcm", True),
        ("gs://b0b/DIR/**.dcm", "DIR/x.dcm.json", False),
        ("gs://b0b/DIR/**.dcm", "DIRx/y.dcm", False),
        ("gs://b0b/DIR/Example?.dcm", "DIR/Example1.dcm", True),
        ("gs://b0b/DIR/Example?.dcm", "DIR/Example.dcm", False),
        ("gs://b0b/DIR/Example?.dcm", "DIR/Example01.dcm", False),
        ("gs://b0b/DIR/Example?.dcm", "DIR/Example/.dcm", False),
        # '**' with nothing after it, and the empty remainder.
        ("gs://b0b/DIR/**", "DIR/", True),
        ("gs://b0b/DIR/**", "DIR/a/", True),
        ("gs://b0b/DIR/**.dcm", "DIR/.dcm", True),
        # Wildcards in directory components (single-level).
        ("gs://b0b/*/x.dcm", "a/x.dcm", True),
        ("gs://b0b/*/x.dcm", "a/b/x.dcm", False),
        ("gs://b0b/*/x.dcm", "/x.dcm", True),
        # Spaces, unicode, names ending in '/', deep paths.
        ("gs://b0b/my dir/*.dcm", "my dir/a file.dcm", True),
        ("gs://b0b/ünï/?.dcm", "ünï/é.dcm", True),
        ("gs://b0b/ünï/?.dcm", "ünï/ab.dcm", False),
        ("gs://b0b/a/*", "a/b/", False),
        ("gs://b0b/a/*/", "a/b/", True),
        ("gs://b0b/" + "d/" * 40 + "*.dcm", "d/" * 40 + "x.dcm", True),
        ("gs://b0b/" + "d/" * 40 + "*.dcm", "d/" * 41 + "x.dcm", False),
        # A literal '*' or '?' in a name is matched by the wildcard (there is no escape).
        ("gs://b0b/a/*.dcm", "a/*.dcm", True),
        ("gs://b0b/a/?.dcm", "a/?.dcm", True),
        # Exact names.
        ("gs://b0b/a/b.dcm", "a/b.dcm", True),
        ("gs://b0b/a/b.dcm", "a/b.dcmx", False),
        ("gs://b0b/a/b.dcm", "a/bxdcm", False),
    ],
)
def test_explicit_matches(uri: str, name: str, expected: bool) -> None:
    assert parse_wildcard(uri).matches(name) is expected
    assert oracle_matches(parse_gcs_uri(uri).name, name) is expected


@pytest.mark.parametrize("char", list(METACHARACTERS))
def test_regex_metacharacters_are_literal(char: str) -> None:
    literal = parse_wildcard(f"gs://b0b/a{char}b/*.dcm")
    assert literal.matches(f"a{char}b/x.dcm")
    assert not literal.matches("axb/x.dcm")
    assert not literal.matches("ab/x.dcm")
    recursive = parse_wildcard(f"gs://b0b/a{char}/**.dcm")
    assert recursive.matches(f"a{char}/q/x.dcm")
    assert not recursive.matches("aa/q/x.dcm")


@pytest.mark.parametrize(
    ("uri", "kind", "prefix", "extension"),
    [
        ("gs://b0b/site/**.dcm", Kind.RECURSIVE, "site/", ".dcm"),
        ("gs://b0b/site/20**", Kind.RECURSIVE, "site/20", ""),
        ("gs://b0b/**.tar.gz", Kind.RECURSIVE, "", ".tar.gz"),
        ("gs://b0b/site/2019/*.dcm", Kind.SINGLE_LEVEL, "site/2019/", ""),
        ("gs://b0b/site/*/x?.dcm", Kind.SINGLE_LEVEL, "site/", ""),
        ("gs://b0b/site/x.dcm", Kind.EXACT, "site/x.dcm", ""),
    ],
)
def test_kinds(uri: str, kind: Kind, prefix: str, extension: str) -> None:
    wildcard = parse_wildcard(uri)
    assert (wildcard.kind, wildcard.literal_prefix, wildcard.extension) == (kind, prefix, extension)
    assert str(wildcard) == uri
    assert wildcard.crosses_slash is (kind is Kind.RECURSIVE)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3://b0b/x", "not a Cloud Storage URI"),
        ("gs://b0b", "no objects"),
        ("gs://b0b/", "no objects"),
        ("gs://b*b/x.dcm", "bucket name must be literal"),
        ("gs://B0B/x.dcm", "not a valid bucket name"),
        ("gs://ab/x.dcm", "not a valid bucket name"),
        ("gs://-ab/x.dcm", "not a valid bucket name"),
        ("gs://192.168.1.1/x.dcm", "not a valid bucket name"),
        ("gs://b0b/a/**/x.dcm", "at the end of the path"),
        ("gs://b0b/a/**x", "at the end of the path"),
        ("gs://b0b/a/**.", "at the end of the path"),
        ("gs://b0b/a/**.d*", "at the end of the path"),
        ("gs://b0b/a/***", "at the end of the path"),
        ("gs://b0b/*/**.dcm", "cannot be combined"),
        ("gs://b0b/a?/**", "cannot be combined"),
        ("gs://b0b/a\nb", "line breaks"),
        ("gs://b0b/" + "x" * 1025, "longer than 1024 bytes"),
    ],
)
def test_invalid_uris_say_why(uri: str, says: str) -> None:
    with pytest.raises(PlanError, match=says) as info:
        parse_wildcard(uri)
    assert "\n" not in str(info.value)


def test_uri_round_trip() -> None:
    assert parse_gcs_uri("gs://my.bucket.name/a b/ü") == GcsUri("my.bucket.name", "a b/ü")


# Alphabets small enough that random names and patterns collide often.
NAME_CHARS = "ab/.*?é " + METACHARACTERS
names = st.text(alphabet=NAME_CHARS, max_size=12)
tokens = st.lists(st.sampled_from(["a", "b", "/", ".", "*", "?", "é", "+", "[", "\\"]), max_size=8)


@st.composite
def valid_patterns(draw: st.DrawFn) -> str:
    """Valid object patterns of every kind: single-level, exact, and PREFIX**EXT."""
    body = "".join(draw(tokens))
    if draw(st.booleans()):
        body = body.replace("*", "").replace("?", "")
        body += "**" + draw(st.sampled_from(["", ".dcm", ".a", ".b.c", ".é+"]))
    else:
        # No accidental '**' in a single-level pattern.
        while "**" in body:
            body = body.replace("**", "*")
    return body or "a"


@settings(max_examples=400)
@given(valid_patterns(), st.lists(names, max_size=12))
@example("a/**.dcm", ["a/.dcm", "a/b/.dcm", "a.dcm", "a/b.dcmx"])
@example("*?", ["", "a", "ab", "a/", "/"])
def test_matcher_agrees_with_oracle(pattern: str, candidates: list[str]) -> None:
    wildcard = parse_wildcard(GcsUri("b0b", pattern))
    for name in candidates:
        assert wildcard.matches(name) is oracle_matches(pattern, name), (pattern, name)


@settings(max_examples=400)
@given(valid_patterns(), st.lists(names, max_size=12))
@example("a[b]/*.d", ["a[b]/x.d", "ab/x.d", "a[b]/y/x.d"])
def test_sql_glob_agrees_with_the_matcher(pattern: str, candidates: list[str]) -> None:
    """The SQLite form used to fill the ledger selects exactly what the matcher accepts."""
    wildcard = parse_wildcard(GcsUri("b0b", pattern))
    glob = sql_glob(pattern)
    with sqlite3.connect(":memory:") as conn:
        for name in candidates:
            row = conn.execute(
                "SELECT ? GLOB ? AND (? IS NULL OR length(?) - length(replace(?, '/', '')) = ?)",
                (name, glob.glob, glob.slashes, name, name, glob.slashes),
            ).fetchone()
            assert bool(row[0]) is wildcard.matches(name), (pattern, name)


@settings(max_examples=400)
@given(st.text(alphabet="ab/.*?", min_size=1, max_size=10))
def test_validity_agrees_with_oracle(pattern: str) -> None:
    try:
        parse_wildcard(GcsUri("b0b", pattern))
    except PlanError:
        assert not oracle_is_valid(pattern), pattern
    else:
        assert oracle_is_valid(pattern), pattern


@settings(max_examples=200)
@given(valid_patterns())
def test_every_match_starts_with_the_literal_prefix(pattern: str) -> None:
    wildcard = parse_wildcard(GcsUri("b0b", pattern))
    sample = pattern.replace("**", "x/y").replace("*", "z").replace("?", "q")
    if wildcard.matches(sample):
        assert sample.startswith(wildcard.literal_prefix)
