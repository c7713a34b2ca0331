"""Import through the emulator: counters, error log entries, duplicates, log truncation.

The issue's done-when: 1,000 instances and 10 bad files end with success=1000, failure=10 and
one log entry per bad file, naming exactly those files; with --log-errors-per-operation 4 the
failure counter still says 10 but only 4 entries are logged.
"""

from __future__ import annotations

import aiohttp
import pytest
from hc_testkit import Hc, StartHc, corpus, counter, unique, upload

from bulkmover.corpus import CorpusFile
from bulkmover.emulator.processes import RunningServer

IMPORT_LOG_TYPE = "type.googleapis.com/google.cloud.healthcare.logging.ImportDicomLogEntry"


@pytest.fixture(scope="module")
def big_corpus() -> list[CorpusFile]:
    files = corpus(studies=10, series=4, instances=25, bad=10, seed=7)
    assert sum(f.valid for f in files) == 1000 and len(files) == 1010
    return files


async def _upload_corpus(
    http: aiohttp.ClientSession, gcs_url: str, files: list[CorpusFile]
) -> tuple[str, str]:
    bucket, prefix = unique("pacs"), "dump/2024"
    await upload(http, gcs_url, bucket, ((f"{prefix}/{f.name}", f.data) for f in files))
    return bucket, prefix


async def test_thousand_instances_with_ten_bad_files(
    hc: Hc, http: aiohttp.ClientSession, gcs_emulator: RunningServer, big_corpus: list[CorpusFile]
) -> None:
    bucket, prefix = await _upload_corpus(http, gcs_emulator.url, big_corpus)
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/{prefix}/**.dcm")
    assert "error" not in op
    assert counter(op) == {"success": 1000, "failure": 10, "pending": 0}
    entries = await hc.log_entries(op["name"], page_size=3)
    bad = {f"gs://{bucket}/{prefix}/{f.name}" for f in big_corpus if not f.valid}
    assert sorted(e["jsonPayload"]["source"] for e in entries) == sorted(bad)
    for entry in entries:
        assert entry["jsonPayload"]["@type"] == IMPORT_LOG_TYPE
        assert entry["jsonPayload"]["error"]["code"] == 3
        assert entry["jsonPayload"]["error"]["message"]
        assert entry["resource"]["type"] == "healthcare_dicom_store"
        assert entry["operation"]["id"] == op["name"].rsplit("/", 1)[1]
    metrics = await hc.ok("GET", f"{store}:getDICOMStoreMetrics")
    assert metrics["instanceCount"] == "1000"
    assert metrics["studyCount"] == "10" and metrics["seriesCount"] == "40"


async def test_log_truncation_keeps_counting(
    start_hc: StartHc,
    http: aiohttp.ClientSession,
    gcs_emulator: RunningServer,
    big_corpus: list[CorpusFile],
) -> None:
    bucket, prefix = await _upload_corpus(http, gcs_emulator.url, big_corpus)
    server = start_hc("--log-errors-per-operation", "4", "--workers", "2")
    hc = Hc(server.url, http)
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/{prefix}/**.dcm")
    assert counter(op) == {"success": 1000, "failure": 10, "pending": 0}
    entries = await hc.log_entries(op["name"])
    bad = {f"gs://{bucket}/{prefix}/{f.name}" for f in big_corpus if not f.valid}
    assert len(entries) == 4
    assert {e["jsonPayload"]["source"] for e in entries} <= bad


@pytest.mark.parametrize("count_as", ["success", "skip"])
async def test_duplicates_are_skipped_never_stored_twice(
    count_as: str, start_hc: StartHc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    files = corpus(studies=2, series=2, instances=3, seed=11)
    bucket = unique("dups")
    # The same 12 instances under two prefixes: the second import finds only duplicates.
    await upload(
        http,
        gcs_emulator.url,
        bucket,
        [(f"a/{f.name}", f.data) for f in files] + [(f"b/{f.name}", f.data) for f in files],
    )
    server = start_hc("--duplicates-count-as", count_as)
    hc = Hc(server.url, http)
    store = await hc.create_store()
    first = await hc.import_and_wait(store, f"gs://{bucket}/a/**")
    assert counter(first)["success"] == 12
    second = await hc.import_and_wait(store, f"gs://{bucket}/b/**")
    expected = 12 if count_as == "success" else 0
    assert counter(second) == {"success": expected, "failure": 0, "pending": 0}
    both = await hc.import_and_wait(store, f"gs://{bucket}/**.dcm")
    assert counter(both)["success"] == (24 if count_as == "success" else 0)
    metrics = await hc.ok("GET", f"{store}:getDICOMStoreMetrics")
    assert metrics["instanceCount"] == "12"
    instances = await hc.ok("GET", f"{store}/dicomWeb/instances", params={"limit": "100"})
    assert len(instances) == 12


async def test_import_from_fake_gcs_server(
    start_hc: StartHc, http: aiohttp.ClientSession, fake_gcs: RunningServer
) -> None:
    """The emulator reads Cloud Storage only through the JSON API, so fake-gcs-server works too."""
    files = corpus(studies=2, series=1, instances=5, bad=2, seed=5)
    bucket = unique("fake")
    await upload(http, fake_gcs.url, bucket, [(f.name, f.data) for f in files], bulk=False)
    server = start_hc(gcs_url=fake_gcs.url)
    hc = Hc(server.url, http)
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/**.dcm")
    assert counter(op) == {"success": 10, "failure": 2, "pending": 0}
    sources = {e["jsonPayload"]["source"] for e in await hc.log_entries(op["name"])}
    assert sources == {f"gs://{bucket}/{f.name}" for f in files if not f.valid}


async def test_wildcards_select_the_documented_objects(
    hc: Hc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    [instance] = corpus(studies=1, seed=3)
    names = ["DIR/Example.dcm", "DIR/Example22.dcm", "DIR/Example1.dcm", "DIR/sub/Example1.dcm"]
    bucket = unique("wild")
    await upload(http, gcs_emulator.url, bucket, [(n, instance.data) for n in names])
    store = await hc.create_store()
    cases = {
        "DIR/Example*.dcm": 3,
        "DIR/Example?.dcm": 1,
        "DIR/**.dcm": 4,
        "DIR/Example1.dcm": 1,
    }
    for pattern, matched in cases.items():
        op = await hc.import_and_wait(store, f"gs://{bucket}/{pattern}")
        assert counter(op)["success"] == matched, pattern


async def test_nothing_matched_fails_the_operation(
    hc: Hc, http: aiohttp.ClientSession, gcs_emulator: RunningServer
) -> None:
    bucket = unique("empty")
    await upload(http, gcs_emulator.url, bucket, [("other/x.txt", b"x")])
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/dicom/**.dcm")
    assert op["error"]["code"] == 5 and "no Cloud Storage objects match" in op["error"]["message"]
    missing = await hc.import_and_wait(store, f"gs://{unique('nobucket')}/**")
    assert missing["error"]["code"] == 5
