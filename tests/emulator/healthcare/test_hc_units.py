"""Pure rules of the emulator: wildcards, filter files, mime types, log filters, quotas, pacing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkmover.emulator.healthcare.filters import parse_filter_file, parse_resource_path
from bulkmover.emulator.healthcare.formats import parse_mime_type
from bulkmover.emulator.healthcare.limits import Pacer, RequestQuota
from bulkmover.emulator.healthcare.logging_filter import match_entry, parse_filter
from bulkmover.emulator.healthcare.names import is_uid
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code
from bulkmover.emulator.healthcare.wildcard import parse_import_uri


def reference_match(pattern: str, name: str) -> bool:
    """The documented rules, written as a plain backtracking matcher."""
    if "**" in pattern:
        head, tail = pattern.split("**")
        return name.startswith(head) and name.endswith(tail) and len(name) >= len(head) + len(tail)

    def match(p: str, n: str) -> bool:
        if not p:
            return not n
        if p[0] == "*":
            return any(match(p[1:], n[i:]) for i in range(len(n) + 1) if "/" not in n[:i])
        if p[0] == "?":
            return bool(n) and n[0] != "/" and match(p[1:], n[1:])
        return bool(n) and n[0] == p[0] and match(p[1:], n[1:])

    return match(pattern, name)


def breaks_recursive_rule(pattern: str) -> bool:
    if "**" not in pattern:
        return False
    head, _, tail = pattern.partition("**")
    other_wildcard = any(c in head + tail for c in "*?")
    bad_tail = "/" in tail or (tail != "" and (not tail.startswith(".") or tail == "."))
    return other_wildcard or bad_tail


patterns = st.text(alphabet="ab/.*?", min_size=1, max_size=10)
names = st.text(alphabet="ab/.", max_size=10)


@given(patterns, st.lists(names, max_size=20))
def test_wildcards_follow_the_documented_rules(pattern: str, candidates: list[str]) -> None:
    try:
        parsed = parse_import_uri(f"gs://bucket/{pattern}")
    except ApiFailure as exc:
        assert exc.code is Code.INVALID_ARGUMENT
        assert breaks_recursive_rule(pattern)
        return
    assert not breaks_recursive_rule(pattern)
    for name in candidates:
        assert parsed.matches(name) == reference_match(pattern, name), name
        if parsed.matches(name):
            assert name.startswith(parsed.prefix)


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("gs://bkt/dir/**/x.dcm", "at the end of the path"),
        ("gs://bkt/dir/*/**.dcm", "cannot be combined"),
        ("gs://bkt/**x", "file extension"),
        ("gs://bkt/***", "cannot be combined"),
        ("gs://bkt*/x.dcm", "not in the bucket"),
        ("gs://b/x.dcm", "invalid bucket name"),
        ("gs://bkt", "names no object"),
        ("s3://b/x", "must start with gs://"),
        ("", "required"),
    ],
)
def test_invalid_import_uris_are_rejected_with_the_rule(uri: str, fragment: str) -> None:
    with pytest.raises(ApiFailure) as err:
        parse_import_uri(uri)
    assert err.value.code is Code.INVALID_ARGUMENT and fragment in err.value.message


def test_literal_prefix_is_the_longest_text_before_a_wildcard() -> None:
    assert parse_import_uri("gs://bkt/a/b/c*.dcm").prefix == "a/b/c"
    assert parse_import_uri("gs://bkt/a/b/**.dcm").prefix == "a/b/"
    literal = parse_import_uri("gs://bkt/a/x.dcm")
    assert literal.literal and literal.prefix == "a/x.dcm"


uids = st.lists(st.integers(0, 10**6).map(str), min_size=1, max_size=5).map(".".join)


@given(st.lists(st.tuples(uids, st.none() | uids, st.none() | uids), min_size=1, max_size=8))
def test_filter_files_round_trip(rows: list[tuple[str, str | None, str | None]]) -> None:
    lines = []
    for study, series, instance in rows:
        line = f"/studies/{study}"
        if series is not None:
            line += f"/series/{series}"
            if instance is not None:
                line += f"/instances/{instance}"
        lines.append(line)
    paths = parse_filter_file("\r\n".join(lines).encode() + b"\n", "gs://b/f.txt")
    assert [str(p) for p in paths] == lines


@pytest.mark.parametrize(
    "line",
    [
        "/study/1.2",
        "/studies/1.2/instances/3",
        "/studies/1.a",
        "studies/1.2",
        "/studies/1.2/series/",
        "/studies/" + "1." * 40 + "1",
    ],
)
def test_a_bad_filter_line_is_named(line: str) -> None:
    data = f"/studies/1.2\n{line}\n".encode()
    with pytest.raises(ApiFailure) as err:
        parse_filter_file(data, "gs://b/f.txt")
    assert err.value.code is Code.INVALID_ARGUMENT
    assert "gs://b/f.txt line 2" in err.value.message
    assert parse_resource_path(line) is None


def test_uids_are_digits_and_dots_up_to_64() -> None:
    assert is_uid("1.2.840.10008.1.2.1") and is_uid("1" * 64)
    assert not is_uid("1" * 65) and not is_uid("1..2") and not is_uid("1.2.") and not is_uid("")


@pytest.mark.parametrize(
    ("mime", "kind", "syntax", "extension"),
    [
        ("application/dicom; transfer-syntax=*", "dicom", "*", ".dcm"),
        (
            "application/dicom; transfer-syntax=1.2.840.10008.1.2",
            "dicom",
            "1.2.840.10008.1.2",
            ".dcm",
        ),
        (
            "application/dicom;transfer-syntax=1.2.840.10008.1.2.1",
            "dicom",
            "1.2.840.10008.1.2.1",
            ".dcm",
        ),
        ("application/octet-stream; transfer-syntax=*", "octet", "*", ""),
        ("image/png", "png", "1.2.840.10008.1.2.1", ".png"),
        (
            "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50",
            "jpeg",
            "1.2.840.10008.1.2.4.50",
            ".jpg",
        ),
        ("", "dicom", "*", ".dcm"),
    ],
)
def test_supported_mime_types(mime: str, kind: str, syntax: str, extension: str) -> None:
    fmt = parse_mime_type(mime)
    assert (fmt.kind, fmt.transfer_syntax, fmt.extension) == (kind, syntax, extension)


@pytest.mark.parametrize(
    ("mime", "fragment"),
    [
        ("application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90", "documented by the API"),
        ("application/dicom; transfer-syntax=1.2.840.10008.1.2.5", "documented by the API"),
        ("image/gif", "unsupported"),
        ("application/dicom; transfer-syntax=9.9", "unsupported"),
    ],
)
def test_other_mime_types_are_refused_clearly(mime: str, fragment: str) -> None:
    with pytest.raises(ApiFailure) as err:
        parse_mime_type(mime)
    assert err.value.code is Code.INVALID_ARGUMENT
    assert fragment in err.value.message and "image/png" in err.value.message


ENTRY = {
    "operation": {"id": "42"},
    "severity": "ERROR",
    "resource": {"type": "healthcare_dicom_store"},
    "jsonPayload": {"@type": "type.googleapis.com/x.ImportDicomLogEntry"},
}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ('operation.id="42"', True),
        ("operation.id=42", True),
        ('operation.id="43"', False),
        ('jsonPayload.@type="type.googleapis.com/x.ImportDicomLogEntry" AND operation.id=42', True),
        ('resource.type="healthcare_dicom_store" severity>=WARNING', True),
        ("severity>ERROR", False),
        ('jsonPayload.@type:"ImportDicom"', True),
        ('operation.id!="42"', False),
        ("", True),
    ],
)
def test_log_filters(text: str, matches: bool) -> None:
    assert match_entry(parse_filter(text), ENTRY) is matches


@pytest.mark.parametrize("text", ['operation.id=("1" OR', "a=1 or b=2", "???"])
def test_unsupported_log_filters_are_refused(text: str) -> None:
    with pytest.raises(ApiFailure) as err:
        parse_filter(text)
    assert err.value.code is Code.INVALID_ARGUMENT


def test_request_quota_refills_per_project_and_family() -> None:
    quota = RequestQuota(requests_per_minute=60)
    assert all(quota.take("p", "dicomweb", now=0.0) is None for _ in range(60))
    wait = quota.take("p", "dicomweb", now=0.0)
    assert wait == pytest.approx(1.0)
    assert quota.take("p", "operations", now=0.0) is None
    assert quota.take("q", "dicomweb", now=0.0) is None
    assert quota.take("p", "dicomweb", now=1.0) is None


def test_pacer_spaces_callers_and_banks_no_credit() -> None:
    pacer = Pacer(rate=10)
    delays = [pacer.reserve(now=0.0) for _ in range(3)]
    assert delays == pytest.approx([0.0, 0.1, 0.2])
    assert pacer.reserve(now=100.0) == 0.0
    assert pacer.reserve(now=100.0) == pytest.approx(0.1)
    assert Pacer(rate=0).reserve(now=0.0) == 0.0


@pytest.mark.parametrize(
    "module", ["wildcard", "filters", "formats", "limits", "names", "logging_filter"]
)
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"bulkmover.emulator.healthcare.{module}"))
    assert result.failed == 0 and result.attempted > 0
