"""matchGlob: the emulator's regex translation against an independent backtracking matcher."""

from __future__ import annotations

import pytest
from gcs_oracle import glob_match
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.emulator.gcs.errors import GcsApiError
from bulkmover.emulator.gcs.globs import compile_glob

TOKENS = ["a", "b", "/", ".", "*", "**", "?", "[ab]", "[!a]", "[a-c]", "{a,b/}", "{**/,x}", "\\*"]
NAME_CHARS = "ab/.c*"

patterns = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)
names = st.text(alphabet=NAME_CHARS, min_size=0, max_size=10)


@settings(max_examples=600, deadline=None)
@given(patterns, names)
def test_translation_agrees_with_the_oracle(pattern: str, name: str) -> None:
    assert compile_glob(pattern).matches(name) == glob_match(pattern, name)


@settings(max_examples=300, deadline=None)
@given(patterns, names)
def test_every_match_starts_with_the_literal_prefix(pattern: str, name: str) -> None:
    glob = compile_glob(pattern)
    if glob.matches(name):
        assert name.startswith(glob.literal_prefix)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*.dcm", "a.dcm", True),
        ("*.dcm", "dir/a.dcm", False),
        ("**.dcm", "dir/sub/a.dcm", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "ab", False),
        ("**/b", "b", True),
        ("a/**", "a/x/y", True),
        ("a/**", "a", False),
        ("??.txt", "ab.txt", True),
        ("??.txt", "a/.txt", False),
        ("[!a]x", "bx", True),
        ("[!a]x", "ax", False),
        ("{jpg,png}/*", "png/1", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("x+(y)[$]^|.", "x+(y)$^|.", True),
    ],
)
def test_documented_cases(pattern: str, name: str, expected: bool) -> None:
    assert compile_glob(pattern).matches(name) is expected
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["", "a[bc", "{a,b", "a\\", "[z-a]"])
def test_malformed_globs_are_400(pattern: str) -> None:
    with pytest.raises(GcsApiError) as caught:
        compile_glob(pattern)
    assert caught.value.status == 400
