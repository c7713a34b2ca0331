"""Client side of the bulk path: stream rows to ``POST /_emulator/b/{bucket}/bulk``.

>>> rows = (BulkRow(f"pacs/{i:07d}.dcm", size=4096) for i in range(1_000_000))
>>> inserted = await bulk_load("http://127.0.0.1:4443", "pacs-dump", rows)

Rows are encoded and sent as they are produced, so a generator of a million rows costs no
memory. ``bulk_load_sync`` does the same from synchronous code.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from bulkmover.errors import EmulatorError


@dataclass(frozen=True, slots=True)
class BulkRow:
    """One object to load: synthetic content of ``size`` bytes, or the given ``content``."""

    name: str
    size: int | None = None
    content: bytes | None = None
    content_type: str | None = None

    def to_line(self) -> bytes:
        row: dict[str, Any] = {"name": self.name}
        if self.content is not None:
            row["content_b64"] = base64.b64encode(self.content).decode()
        else:
            row["size"] = self.size or 0
        if self.content_type is not None:
            row["content_type"] = self.content_type
        return json.dumps(row, ensure_ascii=False).encode() + b"\n"


RowLike = BulkRow | Mapping[str, Any]


def _line(row: RowLike) -> bytes:
    if isinstance(row, BulkRow):
        return row.to_line()
    return json.dumps(dict(row), ensure_ascii=False).encode() + b"\n"


async def _body(
    rows: Iterable[RowLike] | AsyncIterable[RowLike], lines: int
) -> AsyncIterator[bytes]:
    buf: list[bytes] = []
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            buf.append(_line(row))
            if len(buf) >= lines:
                yield b"".join(buf)
                buf.clear()
    else:
        for row in rows:
            buf.append(_line(row))
            if len(buf) >= lines:
                yield b"".join(buf)
                buf.clear()
                await asyncio.sleep(0)
    if buf:
        yield b"".join(buf)


async def bulk_load(
    endpoint: str,
    bucket: str,
    rows: Iterable[RowLike] | AsyncIterable[RowLike],
    *,
    session: aiohttp.ClientSession | None = None,
    lines_per_chunk: int = 2000,
) -> int:
    """Load ``rows`` (BulkRow or dicts of the NDJSON fields) into ``bucket``; the count loaded."""
    url = f"{endpoint.rstrip('/')}/_emulator/b/{quote(bucket, safe='')}/bulk"
    own = session is None
    http = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
    try:
        async with http.post(
            url,
            data=_body(rows, lines_per_chunk),
            headers={"Content-Type": "application/x-ndjson"},
        ) as response:
            text = await response.text()
            if response.status != 200:
                raise EmulatorError(
                    f"bulk load into gs://{bucket} at {endpoint} failed: HTTP {response.status}: "
                    f"{_message(text)}"
                )
            return int(json.loads(text)["inserted"])
    except aiohttp.ClientError as exc:
        raise EmulatorError(
            f"bulk load into gs://{bucket} at {endpoint} failed: {exc}; is the emulator running?"
        ) from None
    finally:
        if own:
            await http.close()


def bulk_load_sync(endpoint: str, bucket: str, rows: Iterable[RowLike]) -> int:
    """:func:`bulk_load` for synchronous callers (starts its own event loop)."""
    return asyncio.run(bulk_load(endpoint, bucket, rows))


def _message(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:200]
