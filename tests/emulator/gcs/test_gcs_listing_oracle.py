"""Listing against an independent oracle: every parameter, matchGlob, fields, odd page sizes.

fake-gcs-server ignores matchGlob and fields and mishandles multi-character delimiters, so
here our paged answers are compared with a full scan of the known names (``gcs_oracle``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gcs_oracle import list_names
from gcs_testkit import GcsHttp, Listing, unique_bucket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkmover.emulator.gcs.client import BulkRow, bulk_load_sync
from bulkmover.emulator.processes import RunningServer

NAMES = sorted(
    {
        "a",
        "a/",
        "a//",
        "a//b",
        "a/b",
        "a/b/",
        "a/b/c.dcm",
        "a/b/d.dcm",
        "a/bc/x.txt",
        "a-b--c",
        "a--",
        "b.dcm",
        "ba/1.dcm",
        "study 1/series+2/(3).dcm",
        "study 1/series+2/[4].dcm",
        "study 1/series$3/^5.dcm",
        "study 1/series{4}/a|b.dcm",
        "ü/€/x.dcm",
        "ü/€/y.txt",
        "back\\slash/z",
        "z",
        *(f"deep/{i % 3}/{i % 5}/{i:03d}.dcm" for i in range(40)),
    }
)

PREFIXES = ["", "a", "a/", "a/b", "study 1/", "deep/", "deep/1/", "ü/", "nope"]
DELIMITERS = ["", "/", "//", "-", "--", ".dcm", "b"]
OFFSETS = ["", "a/b", "a/b/d.dcm", "b", "deep/1", "deep/2/3/", "study 1/series", "zz"]
GLOBS = [
    "",
    "**.dcm",
    "*.dcm",
    "a/**",
    "**/*.dcm",
    "deep/*/[0-2]/0?[05].dcm",
    "deep/{0,2}/**",
    "study 1/series[+$]*/*",
    "study 1/series\\{4\\}/*",
    "{a,b}*",
    "**/[!x]*.txt",
    "ü/**",
]
PAGE_SIZES = [1, 2, 3, 7, 1000]


@pytest.fixture(scope="module")
def ours(gcs_emulator: RunningServer) -> Iterator[GcsHttp]:
    client = GcsHttp(gcs_emulator.url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def bucket(gcs_emulator: RunningServer) -> str:
    name = unique_bucket("oracle")
    rows = [BulkRow(n, content=n.encode()) for n in NAMES]
    assert bulk_load_sync(gcs_emulator.url, name, rows) == len(NAMES)
    return name


def _check(listing: Listing, expected: tuple[list[str], list[str]], page_size: int) -> None:
    items, prefixes = expected
    assert listing.names == items
    assert listing.prefixes == prefixes  # in order across pages, each once
    assert all(int(i["size"]) == len(i["name"].encode()) for i in listing.items)
    for page in listing.pages:
        names = {item["name"] for item in page.get("items", [])}
        assert len(names | set(page.get("prefixes", []))) <= page_size
    assert "nextPageToken" not in listing.pages[-1]


queries = st.fixed_dictionaries(
    {
        "prefix": st.sampled_from(PREFIXES),
        "delimiter": st.sampled_from(DELIMITERS),
        "startOffset": st.sampled_from(OFFSETS),
        "endOffset": st.sampled_from(OFFSETS),
        "includeTrailingDelimiter": st.booleans(),
        "matchGlob": st.sampled_from(GLOBS),
        "maxResults": st.sampled_from(PAGE_SIZES),
    }
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=queries)
def test_listing_equals_the_oracle(ours: GcsHttp, bucket: str, query: dict[str, Any]) -> None:
    params = {k: v for k, v in query.items() if v not in ("", False)}
    if "includeTrailingDelimiter" in params:
        params["includeTrailingDelimiter"] = "true"
    expected = list_names(
        NAMES,
        prefix=query["prefix"],
        delimiter=query["delimiter"],
        start_offset=query["startOffset"],
        end_offset=query["endOffset"],
        include_trailing_delimiter=query["includeTrailingDelimiter"],
        match_glob=query["matchGlob"],
    )
    _check(ours.list_all(bucket, **params), expected, query["maxResults"])


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("glob", [g for g in GLOBS if g])
def test_match_glob_at_every_page_size(
    ours: GcsHttp, bucket: str, glob: str, page_size: int
) -> None:
    expected = list_names(NAMES, match_glob=glob)
    assert expected[0], f"glob {glob!r} matches nothing: a useless case"
    _check(ours.list_all(bucket, matchGlob=glob, maxResults=page_size), expected, page_size)


@pytest.mark.parametrize("delimiter", ["//", "--", ".dcm"])
def test_multi_character_delimiters(ours: GcsHttp, bucket: str, delimiter: str) -> None:
    expected = list_names(NAMES, delimiter=delimiter)
    assert expected[1], "the delimiter rolls nothing up: a useless case"
    _check(ours.list_all(bucket, delimiter=delimiter, maxResults=2), expected, 2)
    assert all(p.endswith(delimiter) for p in expected[1])


def test_prefixes_of_objects_past_start_offset_are_reported(ours: GcsHttp, bucket: str) -> None:
    listing = ours.list_all(bucket, delimiter="/", startOffset="deep/2/3/", maxResults=1)
    assert "deep/" in listing.prefixes  # deep/2/3/... is in range and rolls up into deep/
    assert "a/" not in listing.prefixes


def test_fields_cut_pages_down(ours: GcsHttp, bucket: str) -> None:
    full = ours.list_page(bucket, prefix="deep/", delimiter="/", maxResults=2).json()
    cut = ours.list_page(
        bucket,
        prefix="deep/0/",
        maxResults=3,
        fields="items(name,size),prefixes,nextPageToken",
    ).json()
    assert set(cut) == {"items", "nextPageToken"}
    assert [set(item) for item in cut["items"]] == [{"name", "size"}] * 3
    uncut = ours.list_page(bucket, prefix="deep/0/", maxResults=3).json()
    assert [{"name": i["name"], "size": i["size"]} for i in uncut["items"]] == cut["items"]
    assert "kind" in full and "prefixes" in full
    only_prefixes = ours.list_page(bucket, delimiter="/", fields="prefixes").json()
    assert only_prefixes == {"prefixes": list_names(NAMES, delimiter="/")[1]}


def test_fields_on_object_get(ours: GcsHttp, bucket: str) -> None:
    got = ours.get(bucket, "a/b/c.dcm", fields="name,size,md5Hash").json()
    assert set(got) == {"name", "size", "md5Hash"}
    assert got["size"] == str(len(b"a/b/c.dcm"))


def test_page_tokens_resume_where_the_page_ended(ours: GcsHttp, bucket: str) -> None:
    """Re-requesting a page with the same token is safe and gives the same page."""
    first = ours.list_page(bucket, prefix="deep/", maxResults=5).json()
    token = first["nextPageToken"]
    again = [
        ours.list_page(bucket, prefix="deep/", maxResults=5, pageToken=token).json()
        for _ in range(2)
    ]
    assert again[0] == again[1]
    assert again[0]["items"][0]["name"] > first["items"][-1]["name"]
