"""Differential tests: the same requests to fake-gcs-server (the reference) and to our emulator.

Compared: listed names (the union over all pages, in order), prefixes, object metadata that does
not legitimately differ (sizes, hashes, content types), downloaded bytes and ranges, and error
statuses. Page boundaries are not compared: fake-gcs-server counts only items toward
``maxResults`` while GCS (and we) count items and prefixes together; instead each of our pages
is checked to respect ``maxResults``. fake-gcs-server ignores ``matchGlob`` and ``fields`` and
truncates multi-character delimiters to one character, so those are tested against an
independent oracle in ``test_gcs_listing_oracle.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gcs_testkit import GcsHttp, Listing, unique_bucket

from bulkmover.emulator.processes import RunningServer

TRICKY_NAMES = [
    "plain.txt",
    "a b/c d.txt",
    "a b/e",
    "dir/",
    "dir/a",
    "dir/b/",
    "dir/b/c",
    "dir/b/c/d/e/f/g/h/i/j/leaf.dcm",
    "dir//double",
    "dir/b//x",
    "ü/ñ/文件.dcm",
    "ü/plain",
    "emoji/😀.txt",
    "regex/a+b",
    "regex/(x)",
    "regex/[y]",
    "regex/$z^",
    "regex/a.b",
    "regex/{c}",
    "regex/p|q",
    "regex/back\\slash",
    "regex/star*name",
    "regex/question?mark",
    "percent%20literal",
    "hash#tag&amp=1",
    "colon:semi;comma,",
    "quote'double\"",
    "plus+sign",
    "tilde~",
    "trailing/",
    "trailing/x",
    "trailing//",
    "z-last",
    "zz/1",
    "zz/2",
    "zz/3",
    "zz/4",
    "zz/5",
    "zz/6",
    "zz/7",
    "zz/8",
]

PAGE_SIZES = [1, 2, 3, 7, 1000]

SCENARIOS: list[dict[str, str]] = [
    {},
    {"prefix": "dir/"},
    {"prefix": "dir"},
    {"prefix": "regex/"},
    {"prefix": "ü/"},
    {"prefix": "a b/"},
    {"prefix": "nothing-here/"},
    {"delimiter": "/"},
    {"delimiter": "/", "prefix": "dir/"},
    {"delimiter": "/", "prefix": "dir/b/"},
    {"delimiter": "/", "prefix": "regex/"},
    {"delimiter": "/", "prefix": "trailing/"},
    {"delimiter": "/", "includeTrailingDelimiter": "true"},
    {"delimiter": "/", "prefix": "dir/", "includeTrailingDelimiter": "true"},
    {"delimiter": "-"},
    {"delimiter": "."},
    {"startOffset": "dir/b"},
    {"endOffset": "regex/"},
    {"startOffset": "dir/", "endOffset": "regex/a"},
    {"startOffset": "zz/3", "endOffset": "zz/7"},
    {"prefix": "zz/", "startOffset": "zz/4"},
    {"delimiter": "/", "startOffset": "dir/b", "endOffset": "zz/"},
]


def _id(scenario: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scenario.items()) or "all"


@pytest.fixture(scope="module")
def clients(fake_gcs: RunningServer, gcs_emulator: RunningServer) -> Iterator[dict[str, GcsHttp]]:
    pair = {"reference": GcsHttp(fake_gcs.url), "ours": GcsHttp(gcs_emulator.url)}
    yield pair
    for client in pair.values():
        client.close()


@pytest.fixture(scope="module")
def tricky_bucket(clients: dict[str, GcsHttp]) -> str:
    """One bucket, the same tricky names in both servers (read-only for the tests below)."""
    bucket = unique_bucket("diff-tricky")
    for client in clients.values():
        client.create_bucket(bucket)
        for i, name in enumerate(TRICKY_NAMES):
            client.upload(bucket, name, f"{i}:{name}".encode() * (i + 1))
    return bucket


def _listings(clients: dict[str, GcsHttp], bucket: str, **params: Any) -> dict[str, Listing]:
    return {label: client.list_all(bucket, **params) for label, client in clients.items()}


def _check_our_pages(listing: Listing, max_results: int) -> None:
    for page in listing.pages:
        names = {item["name"] for item in page.get("items", [])}
        prefixes = set(page.get("prefixes", []))
        assert len(names | prefixes) <= max_results
    assert len(listing.prefixes) == len(set(listing.prefixes)), "a prefix came twice"
    assert listing.names == sorted(set(listing.names)), "names out of order or repeated"


def _as_reference_reports(prefixes: list[str], scenario: dict[str, str]) -> list[str]:
    """Our prefixes as fake-gcs-server would report them.

    It drops a prefix that sorts before ``startOffset`` even when objects at or after the offset
    roll up into it (``dir/`` for ``dir/b/c`` with ``startOffset=dir/b``). We report it, since
    the objects that make it are in range, and a lister that cuts the name space with offsets
    would otherwise lose whole directories; the oracle suite checks that behaviour.
    """
    start = scenario.get("startOffset", "")
    return [p for p in prefixes if p >= start]


@pytest.fixture(scope="module")
def reference_answers(clients: dict[str, GcsHttp], tricky_bucket: str) -> dict[str, Listing]:
    """fake-gcs-server's complete answer to each scenario, in one page.

    Its own paging is unreliable (with small pages it loses prefixes that sort before
    ``startOffset`` and pages forever with includeTrailingDelimiter), so our listing at every
    page size is compared with its one-page answer.
    """
    reference = clients["reference"]
    return {_id(s): reference.list_all(tricky_bucket, maxResults=1000, **s) for s in SCENARIOS}


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=_id)
def test_listing_matches_reference(
    clients: dict[str, GcsHttp],
    tricky_bucket: str,
    reference_answers: dict[str, Listing],
    scenario: dict[str, str],
    page_size: int,
) -> None:
    reference = reference_answers[_id(scenario)]
    assert len(reference.pages) == 1
    ours = clients["ours"].list_all(tricky_bucket, maxResults=page_size, **scenario)
    assert ours.names == reference.names
    assert sorted(_as_reference_reports(ours.prefixes, scenario)) == sorted(reference.prefixes)
    sizes = {i["name"]: i["size"] for i in ours.items}
    assert sizes == {i["name"]: i["size"] for i in reference.items}
    _check_our_pages(ours, page_size)


@pytest.mark.parametrize("page_size", [2, 7])
@pytest.mark.parametrize(
    "scenario",
    [s for s in SCENARIOS if "startOffset" not in s and "includeTrailingDelimiter" not in s],
    ids=_id,
)
def test_paged_listing_matches_paged_reference(
    clients: dict[str, GcsHttp], tricky_bucket: str, scenario: dict[str, str], page_size: int
) -> None:
    """Where the reference pages correctly, both paged unions agree too."""
    got = _listings(clients, tricky_bucket, maxResults=page_size, **scenario)
    assert got["ours"].names == got["reference"].names
    assert set(got["ours"].prefixes) == set(got["reference"].prefixes)


def test_the_scenarios_are_not_trivial(clients: dict[str, GcsHttp], tricky_bucket: str) -> None:
    """Guard against a differential suite that compares empty answers."""
    ours = clients["ours"]
    assert len(ours.list_all(tricky_bucket).names) == len(TRICKY_NAMES)
    rolled = ours.list_all(tricky_bucket, delimiter="/")
    assert "dir/" in rolled.prefixes and "plain.txt" in rolled.names


FIELDS_COMPARED = ("name", "bucket", "size", "md5Hash", "crc32c", "contentType", "kind")


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_metadata_and_content_match_reference(
    clients: dict[str, GcsHttp], tricky_bucket: str, name: str
) -> None:
    meta = {label: c.get(tricky_bucket, name) for label, c in clients.items()}
    assert meta["ours"].status == meta["reference"].status == 200
    ours, reference = meta["ours"].json(), meta["reference"].json()
    assert {k: ours[k] for k in FIELDS_COMPARED} == {k: reference[k] for k in FIELDS_COMPARED}
    bodies = {label: c.download(tricky_bucket, name) for label, c in clients.items()}
    assert bodies["ours"].status == bodies["reference"].status == 200
    assert bodies["ours"].body == bodies["reference"].body
    assert bodies["ours"].body.startswith(f"{TRICKY_NAMES.index(name)}:".encode())


@pytest.mark.parametrize(
    "byte_range", ["bytes=0-3", "bytes=5-", "bytes=-4", "bytes=2-2", "bytes=0-999999"]
)
def test_ranges_match_reference(
    clients: dict[str, GcsHttp], tricky_bucket: str, byte_range: str
) -> None:
    name = "dir/b/c/d/e/f/g/h/i/j/leaf.dcm"
    got = {
        label: c.download(tricky_bucket, name, {"Range": byte_range})
        for label, c in clients.items()
    }
    assert got["ours"].status == got["reference"].status
    assert got["ours"].body == got["reference"].body
    assert 0 < len(got["ours"].body)


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/storage/v1/b/{bucket}/o/no-such-object", "missing object"),
        ("/storage/v1/b/{bucket}/o/dir%2Fmissing", "missing nested object"),
        ("/storage/v1/b/no-such-bucket-zz9/o", "missing bucket list"),
        ("/storage/v1/b/no-such-bucket-zz9", "missing bucket"),
        ("/download/storage/v1/b/{bucket}/o/no-such-object", "missing download"),
    ],
)
def test_not_found_statuses_match(
    clients: dict[str, GcsHttp], tricky_bucket: str, path: str, label: str
) -> None:
    statuses = {
        k: c.request("GET", path.format(bucket=tricky_bucket)).status for k, c in clients.items()
    }
    assert statuses["ours"] == statuses["reference"] == 404, label


def test_overwrite_and_delete_match_reference(clients: dict[str, GcsHttp]) -> None:
    bucket = unique_bucket("diff-mutate")
    deleted_status = {"ours": 204, "reference": 200}  # GCS answers 204; fake-gcs-server 200
    for label, client in clients.items():
        client.create_bucket(bucket)
        for name in ("keep", "replace", "gone/1", "gone/2", "stay/1"):
            client.upload(bucket, name, name.encode())
        client.upload(bucket, "replace", b"a longer replacement body", "application/dicom")
        assert client.delete(bucket, "gone/1").status == deleted_status[label]
        assert client.delete(bucket, "gone/2").status == deleted_status[label]
        assert client.delete(bucket, "gone/2").status == 404
    got = _listings(clients, bucket, delimiter="/")
    assert got["ours"].names == got["reference"].names == ["keep", "replace"]
    assert got["ours"].prefixes == got["reference"].prefixes == ["stay/"]
    replaced = {k: c.get(bucket, "replace").json() for k, c in clients.items()}
    for key in ("size", "md5Hash", "crc32c", "contentType"):
        assert replaced["ours"][key] == replaced["reference"][key]
    assert replaced["ours"]["contentType"] == "application/dicom"


def test_bucket_resource_matches_reference(clients: dict[str, GcsHttp]) -> None:
    bucket = unique_bucket("diff-bucket")
    created = {k: c.create_bucket(bucket).json() for k, c in clients.items()}
    fetched = {k: c.request("GET", f"/storage/v1/b/{bucket}").json() for k, c in clients.items()}
    for got in (created, fetched):
        assert got["ours"]["name"] == got["reference"]["name"] == bucket
        assert got["ours"]["kind"] == got["reference"]["kind"] == "storage#bucket"
    listed = {
        k: [
            b["name"]
            for b in c.request("GET", "/storage/v1/b", {"project": "test"}).json()["items"]
        ]
        for k, c in clients.items()
    }
    assert bucket in listed["ours"] and bucket in listed["reference"]
