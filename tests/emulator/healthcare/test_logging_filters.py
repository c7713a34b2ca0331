"""Logging ``entries:list`` filters and ingestion delay: the parser and matcher, then the server.

The unit half pins down the query language subset (Logging's precedence, where OR binds tighter
than AND; NOT and ``-``; value lists; instants compared as times; quoting) and the refusals. The
HTTP half runs the emulator as a process, makes real imports with bad files produce entries, and
reads them back with raw requests and with google-api-python-client's Logging v2 discovery
document, including paging through filtered results and ``--log-ingestion-delay``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cloudkit import start_healthcare_emulator
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from hc_testkit import Hc, StartHc, corpus, counter, unique, upload

from bulkmover.emulator.healthcare.db import Database
from bulkmover.emulator.healthcare.logging_api import read_page
from bulkmover.emulator.healthcare.logging_filter import (
    And,
    Not,
    Or,
    comparison,
    instant_nanos,
    match_entry,
    parse_filter,
    pinned_operation_ids,
)
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code
from bulkmover.emulator.processes import RunningServer

IMPORT_LOG_TYPE = "type.googleapis.com/google.cloud.healthcare.logging.ImportDicomLogEntry"

ENTRY: dict[str, Any] = {
    "logName": "projects/p/logs/healthcare.googleapis.com%2Fimport_dicom",
    "resource": {
        "type": "healthcare_dicom_store",
        "labels": {"project_id": "p", "location": "l", "dataset_id": "d", "dicom_store_id": "s"},
    },
    "operation": {"id": "42", "producer": "healthcare.googleapis.com/ImportDicomData"},
    "severity": "ERROR",
    "timestamp": "2026-01-01T00:01:02.123456Z",
    "insertId": "42-7",
    "labels": {"a.b": "dotted", "with space": "x"},
    "jsonPayload": {
        "@type": IMPORT_LOG_TYPE,
        "source": "gs://b/dir/file 1.dcm",
        "error": {"code": 3, "message": "empty DICOM instance found"},
        "note": 'a "quoted" \\ back',
        "retried": False,
        "tags": ["x", "y"],
    },
}


# -- the language, unit by unit ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "matches"),
    [
        # Logging's precedence: OR binds tighter than AND (SQL would answer the opposite).
        ('operation.id="1" AND severity=ERROR OR operation.id="42"', False),
        ('operation.id="42" OR operation.id="1" AND severity=DEBUG', False),
        ("operation.id=42 severity=DEBUG OR severity=ERROR", True),
        (
            "operation.id=1 OR NOT severity=ERROR AND NOT insertId=x OR jsonPayload.error.code=3",
            False,
        ),
        # NOT binds tighter than OR; "-" is NOT.
        ("NOT operation.id=42 OR severity=ERROR", True),
        ("NOT (operation.id=42 OR severity=DEBUG)", False),
        ("NOT NOT operation.id=42", True),
        ("-operation.id=42", False),
        ("-operation.id=43", True),
        ("-(operation.id=42 severity=ERROR)", False),
        ("severity=ERROR -operation.id=43", True),
        # Implicit AND, parentheses, newlines.
        ("operation.id=42 severity=ERROR", True),
        ("operation.id=42 severity=DEBUG", False),
        ("operation.id=42\n  AND severity=ERROR\n", True),
        ("(operation.id=1 AND severity=ERROR) OR operation.id=42", True),
        ("((operation.id=42))", True),
        ("", True),
        ("   ", True),
        # Value lists.
        ('operation.id=("41" OR "42")', True),
        ('operation.id=("41" OR "43")', False),
        ('operation.id:("4" AND "2")', True),
        ("operation.id:(4 AND 9)", False),
        ("operation.id=(41 OR NOT 43)", True),
        ("operation.id=(41 OR 43) OR severity=ERROR", True),
        ("severity=(DEBUG OR error)", True),
        # Comparisons on dotted fields.
        ('resource.type="healthcare_dicom_store"', True),
        ('resource.labels.dicom_store_id="s"', True),
        ('resource.labels.dicom_store_id!="s"', False),
        (f'jsonPayload.@type="{IMPORT_LOG_TYPE}"', True),
        ('jsonPayload.@type:"ImportDicomLogEntry"', True),
        ('jsonPayload.@type:"importdicomlogentry"', True),  # ":" ignores case
        ('jsonPayload.@type="importdicomlogentry"', False),  # "=" does not
        ('logName:"import_dicom"', True),
        ('logName="projects/p/logs/healthcare.googleapis.com%2Fimport_dicom"', True),
        ('insertId>"42-6" AND insertId<"42-8"', True),
        # Severity by rank, names in any case or numbers.
        ("severity>=WARNING", True),
        ("severity>ERROR", False),
        ("severity<=error", True),
        ('severity>="error"', True),
        ("severity>=500", True),
        ("severity<CRITICAL", True),
        ("severity!=ERROR", False),
        # Numbers as numbers, booleans, repeated fields.
        ("jsonPayload.error.code=3", True),
        ('jsonPayload.error.code="3"', True),
        ("jsonPayload.error.code>=10", False),  # as strings "3" >= "10"
        ("jsonPayload.error.code<10", True),
        ("jsonPayload.retried=false", True),
        ('jsonPayload.tags="y"', True),
        ('jsonPayload.tags!="z"', True),
        ('jsonPayload.tags!="y"', False),
        # Presence and absence.
        ("jsonPayload.source:*", True),
        ("jsonPayload.resourceName:*", False),
        ("NOT jsonPayload.resourceName:*", True),
        ('jsonPayload.missing="x"', False),
        ('jsonPayload.missing!="x"', True),
        # Regular expressions.
        (r'jsonPayload.source=~"file \d\.dcm$"', True),
        ('jsonPayload.source!~"^gs://"', False),
        # Quoting and escapes.
        ('jsonPayload.source="gs://b/dir/file 1.dcm"', True),
        ('jsonPayload.error.message="empty DICOM instance found"', True),
        (r'jsonPayload.note="a \"quoted\" \\ back"', True),
        (r'jsonPayload.note:"\u0071uoted"', True),
        ('labels."a.b"="dotted"', True),
        ('labels."with space"=x', True),
        ('labels.a.b="dotted"', False),
        ('jsonPayload."@type":"ImportDicom"', True),
        # Timestamps compare as instants: fractions, offsets, case of T and Z.
        ('timestamp>="2026-01-01T00:00:00Z"', True),
        ('timestamp>="2026-01-01T00:01:02.123457Z"', False),
        ('timestamp<="2026-01-01T00:01:02.123456Z"', True),
        ('timestamp="2026-01-01T00:01:02.123456000Z"', True),
        ('timestamp="2026-01-01T01:01:02.123456+01:00"', True),
        ('timestamp>"2025-12-31T23:59:59-00:30"', False),  # 00:29:59Z; as strings: True
        ('timestamp<"2026-01-01T00:01:02.1234561Z"', True),
        ('timestamp>="2026-01-01t00:00:00z"', True),
        ('timestamp:"2026-01-01"', True),
    ],
)
def test_filter_matches(text: str, matches: bool) -> None:
    assert match_entry(parse_filter(text), ENTRY) is matches


@pytest.mark.parametrize(
    ("stamp", "text", "matches"),
    [
        ("2026-01-01T02:00:00+02:00", 'timestamp<"2026-01-01T00:30:00Z"', True),
        ("2026-01-01T02:00:00+02:00", 'timestamp>="2026-01-01T00:30:00Z"', False),
        ("2025-12-31T20:00:00.5-04:00", 'timestamp="2026-01-01T00:00:00.500Z"', True),
        ("not a time", 'timestamp>="2026-01-01T00:00:00Z"', False),
        ("not a time", 'timestamp!="2026-01-01T00:00:00Z"', True),
    ],
)
def test_entry_timestamps_compare_as_instants(stamp: str, text: str, matches: bool) -> None:
    assert match_entry(parse_filter(text), {**ENTRY, "timestamp": stamp}) is matches


def test_missing_severity_is_default() -> None:
    entry = {k: v for k, v in ENTRY.items() if k != "severity"}
    assert match_entry(parse_filter("severity=DEFAULT"), entry)
    assert not match_entry(parse_filter("severity>=DEBUG"), entry)


def test_precedence_builds_logging_trees() -> None:
    def c(field: str, value: str) -> Any:
        return comparison(tuple(field.split(".")), "=", value)

    assert parse_filter("a=1 AND b=2 OR c=3") == And((c("a", "1"), Or((c("b", "2"), c("c", "3")))))
    # The documentation's example: "a" OR NOT "b" AND NOT "c" OR "d".
    assert parse_filter("a=1 OR NOT b=2 AND NOT c=3 OR d=4") == And(
        (Or((c("a", "1"), Not(c("b", "2")))), Or((Not(c("c", "3")), c("d", "4"))))
    )
    assert parse_filter("a=1 b=2 OR c=3") == parse_filter("a=1 AND (b=2 OR c=3)")
    assert parse_filter('x=("1" OR "2")') == parse_filter("x=1 OR x=2")
    assert parse_filter("-x=1") == parse_filter("NOT x=1") == Not(c("x", "1"))
    assert parse_filter("x=-1") == c("x", "-1")


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ('operation.id="1"', {"1"}),
        ('operation.id=("1" OR "2") AND severity=ERROR', {"1", "2"}),
        ('severity=ERROR operation.id=("1" OR "2")', {"1", "2"}),
        ('(operation.id="1" OR operation.id="2") resource.type="x"', {"1", "2"}),
        ('operation.id="1" AND operation.id=("1" OR "2")', {"1"}),
        ('operation.id="1" AND operation.id="2"', set()),
        ('operation.id="1" OR severity=ERROR', None),
        ('NOT operation.id="1"', None),
        ('operation.id:"1"', None),
        ('operation.id!="1"', None),
        ("", None),
    ],
)
def test_pinned_operation_ids(text: str, ids: set[str] | None) -> None:
    pinned = pinned_operation_ids(parse_filter(text))
    assert (None if pinned is None else set(pinned)) == ids


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T00:00:00.000000001Z", 1),
        ("1970-01-01T00:00:00.0000000019Z", 1),  # beyond nanoseconds: cut
        ("1970-01-01T01:00:00+01:00", 0),
        ("1969-12-31T23:00:00-01:00", 0),
        ("1970-01-01 00:00:00z", 0),
        ("2026-02-29T00:00:00Z", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-01-01T24:00:00Z", None),
        ("2026-01-01T00:00:00", None),  # no offset
        ("2026-01-01", None),
    ],
)
def test_instant_nanos(text: str, nanos: int | None) -> None:
    assert instant_nanos(text) == nanos


@pytest.mark.parametrize(
    "text",
    [
        "???",
        "operation.id",
        "operation.id=",
        "=42",
        "(operation.id=42",
        "operation.id=42)",
        "()",
        "operation.id=42 AND",
        "OR operation.id=42",
        "NOT",
        '"bare text"',
        "operation.id=42 or severity=ERROR",
        "operation.id=42 and severity=ERROR",
        "timestamp>=2026-01-01T00:00:00Z",
        'timestamp>="yesterday"',
        'timestamp>="2026-02-30T00:00:00Z"',
        "severity>=LOUD",
        'jsonPayload.source=~"("',
        'operation.id="unterminated',
        "insertId = abc:def",
        "a..b=1",
        "labels.=x",
        "a!b",
        'operation.id=("1" OR )',
        'operation.id=("1" OR "2"',
        "x=" + "y" * 20_001,
        "(" * 3000 + "a=1" + ")" * 3000,
        "NOT " * 3000 + "a=1",
    ],
)
def test_unsupported_filters_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(ApiFailure) as err:
        parse_filter(text)
    assert err.value.code is Code.INVALID_ARGUMENT
    assert "\n" not in err.value.message and len(err.value.message) < 300, err.value.message


def test_refusals_say_what_to_do() -> None:
    def message(text: str) -> str:
        with pytest.raises(ApiFailure) as err:
            parse_filter(text)
        return err.value.message

    assert "upper case" in message("a=1 or b=2")
    assert '"2026-01-01T00:00:00Z"' in message("timestamp>=2026-01-01T00:00:00Z")
    assert "quote" in message("insertId = abc:def")
    assert "WARNING" in message("severity>=LOUD")
    assert "name the field" in message('"just text"')


# -- the database's part ----------------------------------------------------------------------
def test_log_rows_by_operation_visibility_and_keyset(tmp_path: Path) -> None:
    db = Database(tmp_path)
    for i in range(6):
        delay = 1000.0 if i == 4 else 0.0
        db.add_log_entry("p", f"op{i % 3}", {"n": i}, delay)
    db.add_log_entry("q", "op0", {"n": 99})
    now = time.time()

    def ns(rows: list[sqlite3.Row]) -> list[int]:
        return [json.loads(r["entry"])["n"] for r in rows]

    assert ns(db.log_entries(["p"], None, visible_by=now)) == [0, 1, 2, 3, 5]
    assert ns(db.log_entries(["p"], None, visible_by=now + 2000)) == [0, 1, 2, 3, 4, 5]
    assert ns(db.log_entries(["p"], ["op0", "op2"], visible_by=now)) == [0, 2, 3, 5]
    assert ns(db.log_entries(["p", "q"], ["op0"], visible_by=now)) == [0, 3, 99]
    assert ns(db.log_entries(["p"], [], visible_by=now)) == []
    first, second = db.log_entries(["p"], None, visible_by=now, limit=2)
    assert ns(db.log_entries(["p"], None, visible_by=now, after_id=second["id"])) == [2, 3, 5]
    rows = db.log_entries(["p"], None, visible_by=now, descending=True)
    assert ns(rows) == [5, 3, 2, 1, 0]
    assert ns(
        db.log_entries(["p"], None, visible_by=now, after_id=rows[1]["id"], descending=True)
    ) == [2, 1, 0]
    db.close()


def _pages(db: Database, text: str, size: int, budget: int, descending: bool) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: int | None = None
    while True:
        page = read_page(
            db,
            ["p"],
            parse_filter(text),
            size=size,
            cursor=cursor,
            descending=descending,
            now=time.time(),
            budget=budget,
        )
        pages.append([e["n"] for e in page.entries])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_stop_at_the_scan_budget_and_read_on(tmp_path: Path) -> None:
    """A sparse filter over many rows answers short or empty pages with tokens, as Logging may;
    a full last page carries no token."""
    db = Database(tmp_path)
    for i in range(10):
        db.add_log_entry("p", "op", {"n": i, "severity": "ERROR" if i in (1, 8) else "INFO"})
    assert _pages(db, "severity=ERROR", 5, budget=3, descending=False) == [[1], [], [8], []]
    assert _pages(db, "severity=ERROR", 5, budget=3, descending=True) == [[8], [], [1], []]
    assert _pages(db, "severity=ERROR", 1, budget=100, descending=False) == [[1], [8]]
    assert _pages(db, "severity=ERROR", 2, budget=100, descending=False) == [[1, 8]]
    assert _pages(db, "", 4, budget=100, descending=True) == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]
    db.close()


def test_old_data_dir_gains_the_visibility_column(tmp_path: Path) -> None:
    """A data dir written before --log-ingestion-delay existed still lists its entries."""
    conn = sqlite3.connect(tmp_path / "healthcare.sqlite3")
    conn.executescript(
        "CREATE TABLE log_entries (id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, "
        "op_id TEXT NOT NULL, entry TEXT NOT NULL);"
        "INSERT INTO log_entries (project, op_id, entry) VALUES ('p', 'old', '{\"n\": 1}');"
    )
    conn.close()
    db = Database(tmp_path)
    db.add_log_entry("p", "new", {"n": 2})
    rows = db.log_entries(["p"], None, visible_by=time.time())
    assert [json.loads(r["entry"])["n"] for r in rows] == [1, 2]
    db.close()
    assert [
        json.loads(r["entry"])["n"]
        for r in Database(tmp_path).log_entries(["p"], ["old"], visible_by=0)
    ] == [1]


# -- the server -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """Three finished imports with bad files, in a project no other test writes to."""

    url: str
    project: str
    stores: dict[str, str]  # store id -> resource name
    ops: dict[str, str]  # label (a1, a2, b) -> operation id
    bad: dict[str, set[str]]  # label -> the gs:// URIs of its bad files
    stamps: dict[str, list[str]]  # label -> its entries' timestamps


async def _make_scene(url: str, gcs_url: str) -> Scene:
    project = unique("logs")
    location = "us-central1"
    plan = {"a1": ("sa", 3, 2), "a2": ("sa", 2, 1), "b": ("sb", 2, 1)}  # label: store, bad, good
    stores: dict[str, str] = {}
    ops: dict[str, str] = {}
    bad: dict[str, set[str]] = {}
    stamps: dict[str, list[str]] = {}
    async with aiohttp.ClientSession() as http:
        hc = Hc(url, http)
        base = f"projects/{project}/locations/{location}"
        await hc.ok("POST", f"{base}/datasets", params={"datasetId": "ds"})
        for store in ("sa", "sb"):
            await hc.ok(
                "POST", f"{base}/datasets/ds/dicomStores", {}, params={"dicomStoreId": store}
            )
            stores[store] = f"{base}/datasets/ds/dicomStores/{store}"
        for seed, (label, (store, n_bad, n_good)) in enumerate(plan.items(), start=60):
            files = corpus(studies=1, instances=n_good, bad=n_bad, seed=seed)
            bucket = unique(f"logs-{label}")
            await upload(http, gcs_url, bucket, [(f.name, f.data) for f in files])
            op = await hc.import_and_wait(stores[store], f"gs://{bucket}/**")
            assert counter(op)["failure"] == n_bad, op
            ops[label] = op["name"].rsplit("/", 1)[1]
            bad[label] = {f"gs://{bucket}/{f.name}" for f in files if not f.valid}
        answer = await hc.call(
            "POST",
            "",
            {"resourceNames": [f"projects/{project}"], "pageSize": 1000},
            raw_url=f"{url}/v2/entries:list",
        )
        for entry in answer.json()["entries"]:
            label = next(k for k, v in ops.items() if v == entry["operation"]["id"])
            stamps.setdefault(label, []).append(entry["timestamp"])
    return Scene(url, project, stores, ops, bad, stamps)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer) -> Iterator[Scene]:
    server = start_healthcare_emulator(
        tmp_path_factory.mktemp("hc-logging"), gcs_emulator.url, "--workers", "0"
    )
    try:
        yield asyncio.run(_make_scene(server.url, gcs_emulator.url))
    finally:
        server.stop()


async def _list(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/v2/entries:list", json=body) as resp:
        return resp.status, await resp.json()


async def _all(
    http: aiohttp.ClientSession,
    scene: Scene,
    filter: str,
    page_size: int = 1000,
    order: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Every matching entry, page by page, and the number of pages read."""
    entries: list[dict[str, Any]] = []
    token, pages = "", 0
    while True:
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{scene.project}"],
            "filter": filter,
            "pageSize": page_size,
        }
        if order:
            body["orderBy"] = order
        if token:
            body["pageToken"] = token
        status, page = await _list(http, scene.url, body)
        assert status == 200, page
        pages += 1
        entries += page.get("entries", [])
        token = page.get("nextPageToken", "")
        if not token:
            return entries, pages


def _sources(entries: list[dict[str, Any]]) -> set[str]:
    sources = [e["jsonPayload"]["source"] for e in entries]
    assert len(sources) == len(set(sources)), "an entry came back twice"
    return set(sources)


async def test_one_operation_and_value_lists(scene: Scene, http: aiohttp.ClientSession) -> None:
    a1, a2, b = (scene.ops[k] for k in ("a1", "a2", "b"))
    entries, _ = await _all(http, scene, f'operation.id="{a1}"')
    assert _sources(entries) == scene.bad["a1"]
    assert all(e["jsonPayload"]["@type"] == IMPORT_LOG_TYPE for e in entries)
    entries, _ = await _all(http, scene, f'operation.id=("{a1}" OR "{b}")')
    assert _sources(entries) == scene.bad["a1"] | scene.bad["b"]
    entries, _ = await _all(http, scene, f"operation.id:({a2} OR {b}) severity>=ERROR")
    assert _sources(entries) == scene.bad["a2"] | scene.bad["b"]
    entries, _ = await _all(http, scene, f'operation.id="{a1}" AND operation.id="{b}"')
    assert entries == []


async def test_boolean_filters_over_http(scene: Scene, http: aiohttp.ClientSession) -> None:
    a1, a2, b = (scene.ops[k] for k in ("a1", "a2", "b"))
    bad = scene.bad
    cases = {
        f'resource.labels.dicom_store_id="sb" OR operation.id="{a2}"': bad["b"] | bad["a2"],
        # Logging's precedence: type AND (a1 OR b).
        f'resource.type="healthcare_dicom_store" AND operation.id="{a1}" OR operation.id="{b}"': (
            bad["a1"] | bad["b"]
        ),
        f'-operation.id="{a1}"': bad["a2"] | bad["b"],
        'NOT resource.labels.dicom_store_id="sa"': bad["b"],
        f'(operation.id="{a1}" OR operation.id="{a2}") -resource.labels.dicom_store_id="sb"': (
            bad["a1"] | bad["a2"]
        ),
        f'jsonPayload.@type="{IMPORT_LOG_TYPE}" jsonPayload.error.code=3': (
            bad["a1"] | bad["a2"] | bad["b"]
        ),
        'logName:"import_dicom" severity<ERROR': set(),
    }
    for text, expected in cases.items():
        entries, _ = await _all(http, scene, text)
        assert _sources(entries) == expected, text


def _with_offset(stamp: str, hours: int, minutes: int) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment.astimezone(timezone(timedelta(hours=hours, minutes=minutes))).isoformat()


async def test_time_windows_compare_as_times(scene: Scene, http: aiohttp.ClientSession) -> None:
    """The ops ran one after the other, so b's first timestamp splits the log in two."""
    cut = min(scene.stamps["b"])
    later, _ = await _all(http, scene, f'timestamp>="{cut}"')
    assert _sources(later) == scene.bad["b"]
    earlier, _ = await _all(http, scene, f'timestamp<"{cut}"')
    assert _sources(earlier) == scene.bad["a1"] | scene.bad["a2"]
    for hours, minutes in ((5, 30), (-9, 0)):
        shifted = _with_offset(cut, hours, minutes)
        same, _ = await _all(http, scene, f'timestamp>="{shifted}"')
        assert _sources(same) == scene.bad["b"], shifted
    nothing, _ = await _all(http, scene, 'timestamp<"1970-01-01T00:00:00Z"')
    assert nothing == []


async def test_paging_through_filtered_entries(scene: Scene, http: aiohttp.ClientSession) -> None:
    a1, b = scene.ops["a1"], scene.ops["b"]
    everything = scene.bad["a1"] | scene.bad["a2"] | scene.bad["b"]
    whole, _ = await _all(http, scene, "severity=ERROR")
    entries, pages = await _all(http, scene, "severity=ERROR", page_size=2)
    assert entries == whole and _sources(entries) == everything and pages == 4
    backwards, pages = await _all(
        http, scene, "severity=ERROR", page_size=3, order="timestamp desc"
    )
    assert backwards == list(reversed(whole)) and pages == 3
    pinned, pages = await _all(http, scene, f'operation.id=("{a1}" OR "{b}")', page_size=1)
    assert _sources(pinned) == scene.bad["a1"] | scene.bad["b"] and pages == 5
    unpinned, pages = await _all(http, scene, f'-operation.id="{a1}"', page_size=2)
    assert _sources(unpinned) == scene.bad["a2"] | scene.bad["b"] and pages == 2


async def test_page_token_must_keep_its_order(scene: Scene, http: aiohttp.ClientSession) -> None:
    body: dict[str, Any] = {"resourceNames": [f"projects/{scene.project}"], "pageSize": 1}
    status, page = await _list(http, scene.url, body)
    assert status == 200 and page["nextPageToken"]
    status, error = await _list(
        http, scene.url, {**body, "pageToken": page["nextPageToken"], "orderBy": "timestamp desc"}
    )
    assert status == 400 and "orderBy" in error["error"]["message"]
    status, error = await _list(http, scene.url, {**body, "pageToken": "bm90LWEtdG9rZW4"})
    assert status == 400 and error["error"]["status"] == "INVALID_ARGUMENT"


async def test_bad_filters_are_400_over_http(scene: Scene, http: aiohttp.ClientSession) -> None:
    for text in ('operation.id=("1" OR', "operation.id=1 or severity=ERROR", '"global search"'):
        body = {"resourceNames": [f"projects/{scene.project}"], "filter": text}
        status, answer = await _list(http, scene.url, body)
        assert status == 400, text
        assert answer["error"]["status"] == "INVALID_ARGUMENT"
        assert "\n" not in answer["error"]["message"]


def test_official_logging_client_reads_filtered_pages(scene: Scene) -> None:
    """google-api-python-client, built from Logging v2's discovery document, pages with
    ``entries().list`` / ``list_next`` (the token travels in the body) against the emulator."""
    service = build(
        "logging",
        "v2",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": scene.url},
        static_discovery=True,
        cache_discovery=False,
    )
    a1, a2 = scene.ops["a1"], scene.ops["a2"]
    entries_api = service.entries()
    request = entries_api.list(
        body={
            "resourceNames": [f"projects/{scene.project}"],
            "filter": f'resource.type="healthcare_dicom_store" '
            f'operation.id=("{a1}" OR "{a2}") AND jsonPayload.@type:"ImportDicomLogEntry"',
            "orderBy": "timestamp desc",
            "pageSize": 2,
        }
    )
    entries: list[dict[str, Any]] = []
    pages = 0
    while request is not None:
        response = request.execute()
        pages += 1
        entries += response.get("entries", [])
        request = entries_api.list_next(request, response)
    assert _sources(entries) == scene.bad["a1"] | scene.bad["a2"] and pages == 3
    stamps = [instant_nanos(e["timestamp"]) for e in entries]
    assert stamps == sorted(stamps, reverse=True)  # type: ignore[type-var]
    with pytest.raises(HttpError) as err:
        entries_api.list(
            body={"resourceNames": [f"projects/{scene.project}"], "filter": "operation.id=("}
        ).execute()
    assert err.value.resp.status == 400


# -- ingestion delay --------------------------------------------------------------------------
async def _bad_import(hc: Hc, http: aiohttp.ClientSession, gcs_url: str, seed: int) -> str:
    files = corpus(studies=1, instances=1, bad=2, seed=seed)
    bucket = unique("late-logs")
    await upload(http, gcs_url, bucket, [(f.name, f.data) for f in files])
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/**")
    assert counter(op)["failure"] == 2
    return str(op["name"])


async def test_entries_arrive_after_the_ingestion_delay(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    delay = 2.0
    hc = Hc(start_hc("--log-ingestion-delay", str(delay)).url, http)
    name = await _bad_import(hc, http, gcs_emulator.url, seed=71)
    assert await hc.log_entries(name) == []  # the operation is done, its log not yet
    deadline = time.monotonic() + 20
    while not (entries := await hc.log_entries(name)):
        assert time.monotonic() < deadline, "entries never became visible"
        await asyncio.sleep(0.1)
    seen = time.time()
    assert len(entries) == 2
    for entry in entries:  # visible no sooner than written + delay (same machine, same clock)
        written = instant_nanos(entry["timestamp"])
        assert written is not None and seen >= written / 1e9 + delay - 0.01


async def test_jittered_entries_all_arrive(
    start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    server = start_hc("--log-ingestion-delay", "0.2", "--log-ingestion-jitter", "1", "--seed", "7")
    hc = Hc(server.url, http)
    name = await _bad_import(hc, http, gcs_emulator.url, seed=72)
    deadline = time.monotonic() + 20
    while len(entries := await hc.log_entries(name)) < 2:
        assert time.monotonic() < deadline, f"only {len(entries)} of 2 entries became visible"
        await asyncio.sleep(0.1)
    assert len(entries) == 2
