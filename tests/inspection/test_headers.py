"""read_headers against our Cloud Storage emulator: real DICOM files, bad files, a missing object,
and headers larger than the first ranged read."""

from __future__ import annotations

import asyncio
import io
import uuid
import warnings
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pydicom
import pytest
from cloudkit import fill_bucket
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from bulkmover.corpus import CorpusSpec, FileKind, iter_corpus
from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError
from bulkmover.gcs.client import ObjectStat, StorageClient
from bulkmover.inspection import Header, parse_header, read_header, read_headers
from bulkmover.inspection.headers import EMPTY, NO_PREFIX, NOT_FOUND

SPEC = CorpusSpec(studies=6, series_per_study=2, instances_per_series=3, bad_files=8, seed=5)


def sample(**changes: object) -> Dataset:
    path = get_testdata_file("MR_small.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
    return ds


def encode(ds: Dataset, *, part10: bool = True) -> bytes:
    """Part 10 bytes, or (``part10=False``) the same without preamble and ``DICM``."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the invalid UID of one test file
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue() if part10 else out.getvalue()[132:]


def big_header(private_bytes: int) -> Dataset:
    """A dataset whose private data (group 0009) pushes the Study UID past ``private_bytes``."""
    ds = sample()
    ds.add_new(0x00090010, "LO", "BULKMOVER TEST")
    ds.add_new(0x00091001, "OB", b"\x01" * private_bytes)
    return ds


class Bucket:
    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"headers-{uuid.uuid4().hex[:8]}"
        self.objects: dict[str, bytes] = {}
        self.expected: dict[str, Header | str] = {}

    def add(self, name: str, data: bytes, expected: Header | str) -> None:
        self.objects[name] = data
        self.expected[name] = expected

    def add_dicom(self, name: str, ds: Dataset) -> None:
        header = Header(name, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        self.add(name, encode(ds), header)


@pytest.fixture(scope="module")
def bucket(gcs_emulator: RunningServer) -> Bucket:
    b = Bucket(gcs_emulator.url)
    for f in iter_corpus(SPEC):  # what `bulkmover corpus` writes: real DICOM and bad files
        name = f"corpus/{f.name}"
        if f.kind is FileKind.DICOM:
            assert f.study_uid and f.series_uid and f.sop_uid
            b.add(name, f.data, Header(name, f.study_uid, f.series_uid, f.sop_uid))
        elif f.kind is FileKind.TRUNCATED:  # cut in its pixel data: the header is whole
            b.add(name, f.data, "header")
        elif f.kind is FileKind.EMPTY:
            b.add(name, f.data, EMPTY)
        else:
            b.add(name, f.data, NO_PREFIX)
    b.add_dicom("big/header-300k.dcm", big_header(300_000))
    b.add_dicom("big/header-5m.dcm", big_header(5_000_000))
    b.add("odd/no-study.dcm", encode(sample(StudyInstanceUID="")), "missing")
    b.add("odd/bad-uid.dcm", encode(sample(SeriesInstanceUID="1.2.abc")), "invalid")
    b.add("odd/no-preamble.dcm", encode(sample(), part10=False), NO_PREFIX)
    b.add("odd/short.dcm", b"\0" * 100, NO_PREFIX)
    fill_bucket(b.url, b.name, b.objects)
    return b


def check(bucket: Bucket, name: str, got: Header | str) -> None:
    expected = bucket.expected[name]
    if expected == "header":
        assert isinstance(got, Header) and got.name == name
    elif expected == "missing":
        assert got == "missing required StudyInstanceUID (0020,000D)"
    elif expected == "invalid":
        assert got == "invalid SeriesInstanceUID '1.2.abc' (0020,000E)"
    else:
        assert got == expected, name


async def test_every_kind_of_file(bucket: Bucket) -> None:
    names = [*bucket.objects, "corpus/gone.dcm"]
    bucket.expected["corpus/gone.dcm"] = NOT_FOUND
    async with StorageClient(endpoint=bucket.url) as storage:
        results = {name: h async for name, h in read_headers(storage, bucket.name, names)}
    assert sorted(results) == sorted(names)
    for name, got in results.items():
        check(bucket, name, got)
    assert sum(isinstance(h, Header) for h in results.values()) == SPEC.instances + 2 + 2


async def test_big_headers_are_read_in_growing_ranges(bucket: Bucket) -> None:
    async with StorageClient(endpoint=bucket.url) as storage:
        got = await read_header(storage, bucket.name, "big/header-300k.dcm")
        check(bucket, "big/header-300k.dcm", got)
        assert storage.counters.requests == 4  # 64 KiB, +64, +128, +256: the UIDs at ~300 KB

        before = storage.counters.requests
        got = await read_header(storage, bucket.name, "big/header-5m.dcm", max_range=1 << 20)
        check(bucket, "big/header-5m.dcm", got)
        assert storage.counters.requests - before == 6  # to 64K, 128K, 256K, 512K, 1M; then all

        # A first read too small for the preamble still reads enough to see it.
        small = await read_header(storage, bucket.name, "odd/no-preamble.dcm", first_read=16)
        assert small == NO_PREFIX


async def test_small_first_read_gives_the_same_answers(bucket: Bucket) -> None:
    names = [n for n in bucket.objects if n.startswith("corpus/")][:12]
    async with StorageClient(endpoint=bucket.url) as storage:
        results = [item async for item in read_headers(storage, bucket.name, names, first_read=600)]
    for name, got in results:
        check(bucket, name, got)


class CountingStorage(StorageClient):
    """Counts range reads in flight; may fail one object with a given status."""

    def __init__(self, endpoint: str, fail: dict[str, int] | None = None) -> None:
        super().__init__(endpoint=endpoint)
        self.fail = fail or {}
        self.in_flight = 0
        self.most = 0

    async def read_range(self, bucket: str, name: str, start: int, end: int) -> bytes:
        if name in self.fail:
            raise ApiError(f"refused {name}", status=self.fail[name])
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.005)
            return await super().read_range(bucket, name, start, end)
        finally:
            self.in_flight -= 1


async def test_concurrency_is_bounded_and_names_are_read_lazily(bucket: Bucket) -> None:
    pulled = 0

    def names() -> Iterator[str]:
        nonlocal pulled
        for name in list(bucket.objects) * 3:
            pulled += 1
            yield name

    async with CountingStorage(bucket.url) as storage:
        count = 0
        async for _ in read_headers(storage, bucket.name, names(), concurrency=5):
            count += 1
    assert count == len(bucket.objects) * 3
    assert storage.most == 5

    # Stopping early leaves no reader behind, and most names were never pulled.
    pulled = 0
    async with CountingStorage(bucket.url) as storage:
        stream = read_headers(storage, bucket.name, names(), concurrency=4)
        async for _ in stream:
            break
        assert isinstance(stream, AsyncGenerator)
        await stream.aclose()
        await asyncio.sleep(0.05)
        assert storage.in_flight == 0
    assert pulled < len(bucket.objects)


async def test_a_refused_bucket_raises_instead_of_blaming_the_files(bucket: Bucket) -> None:
    names = list(bucket.objects)
    async with CountingStorage(bucket.url, fail={names[3]: 403}) as storage:
        with pytest.raises(ApiError, match="refused") as info:
            async for _ in read_headers(storage, bucket.name, names, concurrency=3):
                pass
    assert info.value.status == 403


async def test_storage_reads(bucket: Bucket) -> None:
    name = "big/header-300k.dcm"
    data = bucket.objects[name]
    async with StorageClient(endpoint=bucket.url) as storage:
        assert await storage.read_range(bucket.name, name, 10, 20) == data[10:20]
        assert (
            await storage.read_range(bucket.name, name, len(data) - 5, len(data) + 100)
            == (data[-5:])
        )
        assert await storage.read_range(bucket.name, name, len(data) + 10, len(data) + 20) == b""
        assert await storage.download(bucket.name, name) == data
        stat = await storage.stat(bucket.name, name)
        assert isinstance(stat, ObjectStat) and stat.size == len(data) and stat.generation > 0
        assert await storage.stat(bucket.name, "corpus/gone.dcm") is None
        with pytest.raises(ApiError, match="not found") as info:
            await storage.download(bucket.name, "corpus/gone.dcm")
        assert info.value.status == 404
        with pytest.raises(ValueError):
            await storage.read_range(bucket.name, name, 5, 5)


def test_parse_header_asks_for_more_until_it_can_tell(tmp_path: Path) -> None:
    ds = big_header(100_000)
    data = encode(ds)
    assert parse_header("x", data[:1000], complete=False) is None
    assert parse_header("x", data[:100], complete=False) is None
    cut = data.index(ds.SeriesInstanceUID.encode()) + 5  # inside the Series UID's value
    assert parse_header("x", data[:cut], complete=False) is None
    assert parse_header("x", data[:cut], complete=True) == (
        "DICOM header cut short inside SeriesInstanceUID (0020,000E)"
    )
    assert parse_header("x", data[:1000], complete=True) == (
        "missing required StudyInstanceUID (0020,000D)"
    )
    header = parse_header("x", data, complete=True)
    assert isinstance(header, Header) and header.sop_uid == ds.SOPInstanceUID
