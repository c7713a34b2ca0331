"""Object downloads (``alt=media`` and ``/download/...``), with single byte ranges.

Headers are those clients check: ``x-goog-hash`` (crc32c and md5, which google-cloud-storage
verifies on full downloads), ``x-goog-generation``, ``x-goog-stored-content-length``, ETag.
Bytes are streamed from the blob file in 1 MiB chunks read off the event loop.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import BinaryIO

from aiohttp import web

from bulkmover.emulator.gcs.errors import GcsApiError, object_not_found
from bulkmover.emulator.gcs.resources import DEFAULT_CONTENT_TYPE, object_etag
from bulkmover.emulator.gcs.rows import ObjectRow
from bulkmover.emulator.gcs.state import state_of

CHUNK = 1 << 20
SMALL = 256 << 10
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single-range ``Range`` header; None serves the whole object.

    A header that is not a single byte range is ignored, as HTTP allows; a range that starts
    past the end is a 416.
    """
    if not header or size == 0:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:
        suffix = int(last_s)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last < first:
        return None
    if first >= size:
        raise _unsatisfiable(size)
    return first, min(last, size - 1)


def http_date(us: int) -> str:
    return format_datetime(datetime.fromtimestamp(us / 1_000_000, tz=UTC), usegmt=True)


def _unsatisfiable(size: int) -> GcsApiError:
    return GcsApiError(
        416,
        "requestedRangeNotSatisfiable",
        f"The requested range cannot be satisfied (size {size}).",
    )


async def send_media(request: web.Request, bucket: str, row: ObjectRow) -> web.StreamResponse:
    store = state_of(request).store
    try:
        file = store.blobs.open(row.sha256)
    except FileNotFoundError:
        # Replaced or deleted between the index read and the open: read the index again.
        fresh = store.get_object(bucket, row.name)
        if fresh is None:
            raise object_not_found(bucket, row.name) from None
        row = fresh
        file = store.blobs.open(row.sha256)
    with file:
        return await _stream(request, row, file)


async def _stream(request: web.Request, row: ObjectRow, file: BinaryIO) -> web.StreamResponse:
    wanted = parse_range(request.headers.get("Range"), row.size)
    first, last = wanted if wanted is not None else (0, row.size - 1)
    length = last - first + 1
    response = web.StreamResponse(status=206 if wanted is not None else 200)
    response.headers.update(
        {
            "Content-Type": row.content_type or DEFAULT_CONTENT_TYPE,
            "Accept-Ranges": "bytes",
            "ETag": f'"{object_etag(row.generation, row.metageneration)}"',
            "Last-Modified": http_date(row.updated_us),
            "x-goog-generation": str(row.generation),
            "x-goog-metageneration": str(row.metageneration),
            "x-goog-hash": f"crc32c={row.crc32c},md5={row.md5}",
            "x-goog-stored-content-length": str(row.size),
            "x-goog-stored-content-encoding": "identity",
            "x-goog-storage-class": "STANDARD",
        }
    )
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{row.size}"
    response.content_length = max(length, 0)
    await response.prepare(request)
    if length > 0:
        file.seek(first)
        remaining = length
        while remaining > 0:
            n = min(CHUNK, remaining)
            data = file.read(n) if n <= SMALL else await asyncio.to_thread(file.read, n)
            if not data:
                break
            await response.write(data)
            remaining -= len(data)
    await response.write_eof()
    return response
