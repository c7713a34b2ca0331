"""The UIDs of DICOM files in Cloud Storage, from the first bytes of each file.

Checking that a file's instance is in the store needs only its Study, Series and SOP Instance
UIDs, which sit near the start of a Part 10 file: a ranged read of the first 64 KiB usually holds
them, while files are often megabytes. When elements before the UIDs are larger (big sequences
or private data), the read continues with twice as many bytes, up to ``MAX_RANGE``, then the
whole file. pydicom parses only up to the Series Instance UID (``read_partial`` with a stop
condition), so the cost per file does not depend on its pixel data.

The checks match what the Healthcare API refuses on import: a file must be non-empty, carry the
``DICM`` prefix after its 128-byte preamble, and hold valid Study, Series, SOP Instance and SOP
Class UIDs. Only the header is read: a file cut inside its pixel data passes here (the import
would refuse it).

    async for name, header in read_headers(storage, "pacs", names):
        if isinstance(header, str):
            print(name, "unreadable:", header)
"""

from __future__ import annotations

import asyncio
import io
import warnings
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag, Tag

from bulkmover.errors import ApiError, first_user_error, one_line
from bulkmover.gcs.client import StorageClient

FIRST_READ = 64 * 1024
MAX_RANGE = 4 * 1024 * 1024
"""Largest ranged read; a header that is not complete within it is read with the whole file."""

PREFIX_AT = 128
_PREFIX = b"DICM"
_UIDS: tuple[tuple[str, BaseTag], ...] = (
    ("SOPClassUID", Tag(0x0008, 0x0016)),
    ("SOPInstanceUID", Tag(0x0008, 0x0018)),
    ("StudyInstanceUID", Tag(0x0020, 0x000D)),
    ("SeriesInstanceUID", Tag(0x0020, 0x000E)),
)
_TAGS: list[BaseTag | int] = [tag for _, tag in _UIDS]
_LAST = max(tag for _, tag in _UIDS)

NOT_FOUND = "object not found"
EMPTY = "empty file (0 bytes)"
NO_PREFIX = "not a DICOM file: no DICM preamble"


@dataclass(frozen=True)
class Header:
    """The UIDs that identify a file's instance in a DICOM store."""

    name: str
    study_uid: str
    series_uid: str
    sop_uid: str


async def read_headers(
    storage: StorageClient,
    bucket: str,
    names: Iterable[str],
    *,
    concurrency: int = 64,
    first_read: int = FIRST_READ,
    max_range: int = MAX_RANGE,
) -> AsyncIterator[tuple[str, Header | str]]:
    """For each object name, its ``Header`` or a one-line reason it is not readable DICOM.

    ``concurrency`` reads run at once; results come in the order they finish. ``names`` is
    consumed lazily, so it may be a generator over millions of names. Cloud Storage errors
    other than a missing object (403, retries exhausted) raise ``ApiError``: they are about
    the bucket or the service, not the file.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    pending = iter(names)
    results: asyncio.Queue[tuple[str, Header | str] | _End] = asyncio.Queue(concurrency * 4)

    async def worker() -> None:
        for name in pending:
            header = await read_header(
                storage, bucket, name, first_read=first_read, max_range=max_range
            )
            await results.put((name, header))

    async def run() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(worker())
        except Exception as err:  # the consumer is reading: handing it over cannot block
            failure = first_user_error(err) if isinstance(err, BaseExceptionGroup) else err
            await results.put(_End(failure))
            return
        await results.put(_End(None))

    runner = asyncio.create_task(run(), name="read-headers")
    try:
        while True:
            item = await results.get()
            if isinstance(item, _End):
                if item.failure is not None:
                    raise item.failure
                return
            yield item
    finally:
        if not runner.done():
            runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _End:
    failure: BaseException | None


async def read_header(
    storage: StorageClient,
    bucket: str,
    name: str,
    *,
    first_read: int = FIRST_READ,
    max_range: int = MAX_RANGE,
) -> Header | str:
    """One file's ``Header``, or why it is not readable DICOM (see ``read_headers``)."""
    data = b""
    want: int | None = max(first_read, PREFIX_AT + len(_PREFIX))
    while True:
        try:
            if want is None:
                data, complete = await storage.download(bucket, name), True
            else:
                data += await storage.read_range(bucket, name, len(data), want)
                complete = len(data) < want
        except ApiError as err:
            if err.status == 404:
                return NOT_FOUND
            raise
        verdict = parse_header(name, data, complete=complete)
        if verdict is not None:
            return verdict
        assert want is not None  # a complete file always gets a verdict
        want = want * 2 if want * 2 <= max_range else None


def parse_header(name: str, data: bytes, *, complete: bool) -> Header | str | None:
    """The ``Header`` in the first bytes of a file, a reason it is not DICOM, or None when
    more bytes are needed (``complete``: ``data`` is the whole file)."""
    if not data and complete:
        return EMPTY
    if len(data) < PREFIX_AT + len(_PREFIX):
        return NO_PREFIX if complete else None
    if data[PREFIX_AT : PREFIX_AT + len(_PREFIX)] != _PREFIX:
        return NO_PREFIX
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = read_partial(io.BytesIO(data), stop_when=_past_uids, specific_tags=_TAGS)
            uids = {keyword: _uid(dataset, tag) for keyword, tag in _UIDS}
    except Exception as err:  # pydicom raises many types on malformed or cut input
        if not complete:
            return None
        return one_line(f"unreadable DICOM header: {type(err).__name__}: {err}", 200)
    for keyword, tag in _UIDS:
        value = uids[keyword]
        if value is _CUT or value is None:
            if not complete:
                return None
            if value is _CUT:
                return f"DICOM header cut short inside {keyword} {_tag(tag)}"
            return f"missing required {keyword} {_tag(tag)}"
        assert isinstance(value, str)
        if not _is_uid(value):
            return one_line(f"invalid {keyword} {value[:80]!r} {_tag(tag)}", 200)
    study, series, sop = (
        str(uids[k]) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    )
    return Header(name, study, series, sop)


_CUT = object()


def _past_uids(tag: BaseTag, vr: str | None, length: int) -> bool:
    # int's own comparison: BaseTag's operators convert their operand (a third of the parse)
    return int.__gt__(tag, _LAST)


def _uid(dataset: Dataset, tag: BaseTag) -> Any:
    """The UID text of ``tag``; None when absent, ``_CUT`` when its value ends with the data."""
    if tag not in dataset:
        return None
    raw = dataset.get_item(tag)
    value: Any
    if isinstance(raw, RawDataElement):
        value = raw.value or b""
        if raw.length not in (0xFFFFFFFF,) and len(value) < raw.length:
            return _CUT
    else:
        value = raw.value if raw is not None else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip(" \x00") or None


def _is_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and all(part.isdigit() for part in value.split("."))


def _tag(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"
