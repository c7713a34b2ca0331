"""objects.insert through ``/upload/storage/v1/b/{bucket}/o``: media, multipart and resumable.

Bytes stream into a temporary blob file while they are hashed; the index commits the object only
after the file is in place. Resumable sessions are rows in the index plus a growing file under
``uploads/``, so they survive a restart: a client may resume, query (``Content-Range: bytes
*/N``) or cancel (DELETE) a session as with the real service. Chunks may overlap what was already
received (the overlap is skipped), must not leave a gap, and an intermediate answer is ``308``
with ``Range: bytes=0-N``.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.streams import StreamReader

from bulkmover.emulator.gcs.api import extra_from_resource
from bulkmover.emulator.gcs.blobs import BlobStore, Digest
from bulkmover.emulator.gcs.errors import GcsApiError, invalid, object_not_found, parse_error
from bulkmover.emulator.gcs.multipart import split_multipart
from bulkmover.emulator.gcs.names import check_object_name
from bulkmover.emulator.gcs.resources import object_resource
from bulkmover.emulator.gcs.responses import (
    base_url,
    json_response,
    parse_json_object,
    preconditions,
)
from bulkmover.emulator.gcs.rows import NewObject
from bulkmover.emulator.gcs.state import EmulatorState, state_of
from bulkmover.emulator.mediatypes import split_media_type

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$")


async def insert_object(request: web.Request) -> web.StreamResponse:
    """POST /upload/storage/v1/b/{bucket}/o?uploadType=media|multipart|resumable."""
    if "upload_id" in request.query:
        return await resumable_chunk(request)
    bucket = request.match_info["bucket"]
    state_of(request).store.require_bucket(bucket)
    upload_type = request.query.get("uploadType", "")
    if upload_type == "media":
        return await _media_upload(request, bucket)
    if upload_type == "multipart":
        return await _multipart_upload(request, bucket)
    if upload_type == "resumable":
        return await _start_resumable(request, bucket)
    raise invalid(
        f"Unsupported uploadType {upload_type!r}: use media, multipart or resumable."
        if upload_type
        else "Upload requests must include an uploadType URL parameter (media, multipart or "
        "resumable)."
    )


def _metadata_object(
    resource: dict[str, Any], query_name: str | None, content_type: str | None
) -> tuple[str, str | None, str | None]:
    """(name, contentType, extra JSON) from an object resource a client sent."""
    name = resource.get("name") or query_name
    if not isinstance(name, str) or not name:
        raise GcsApiError(400, "required", "Required parameter: name (the object name).")
    check_object_name(name)
    ctype = resource.get("contentType") or content_type
    extra = extra_from_resource(resource)
    return name, str(ctype) if ctype else None, json.dumps(extra) if extra else None


def _check_hashes(resource: dict[str, Any], digest: Digest) -> None:
    for field, actual, label in (
        ("md5Hash", digest.md5, "MD5"),
        ("crc32c", digest.crc32c, "CRC32C"),
    ):
        claimed = resource.get(field)
        if claimed and claimed != actual:
            raise invalid(
                f"Provided {label} hash {claimed!r} doesn't match calculated {label} hash "
                f"{actual!r}."
            )


async def receive(blobs: BlobStore, stream: StreamReader | BodyPartReader) -> tuple[Path, Digest]:
    """Stream a request body (or a multipart part) into a temporary blob file."""
    writer = blobs.writer()
    try:
        if isinstance(stream, BodyPartReader):
            while chunk := await stream.read_chunk(CHUNK):
                writer.write(chunk)
        else:
            async for chunk in stream.iter_chunked(CHUNK):
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.path, writer.finish()


async def _store_upload(
    request: web.Request,
    bucket: str,
    name: str,
    temp: Path,
    digest: Digest,
    ctype: str | None,
    extra: str | None,
) -> web.Response:
    store = state_of(request).store
    obj = NewObject(name, digest, temp=temp, content_type=ctype, extra=extra)
    try:
        row = await store.write(store.put_object, bucket, obj, preconditions(request.query))
    finally:
        store.blobs.discard(temp)  # nothing left to discard when the write succeeded
    return json_response(request, object_resource(row, bucket, base_url(request)))


async def _media_upload(request: web.Request, bucket: str) -> web.Response:
    name = check_object_name(request.query.get("name", "")) if request.query.get("name") else ""
    if not name:
        raise GcsApiError(400, "required", "Required parameter: name (the object name).")
    preconditions(request.query)  # reject malformed conditions before reading the body
    temp, digest = await receive(state_of(request).store.blobs, request.content)
    ctype = request.headers.get("Content-Type") or None
    return await _store_upload(request, bucket, name, temp, digest, ctype, None)


async def _multipart_upload(request: web.Request, bucket: str) -> web.Response:
    preconditions(request.query)
    media, params = split_media_type(request.headers.get("Content-Type", ""))
    if not media.startswith("multipart/"):
        raise invalid(
            f"A multipart upload needs Content-Type multipart/related, not {media or 'none'}."
        )
    parts = split_multipart(await request.read(), params.get("boundary", ""))
    if len(parts) != 2:
        raise parse_error(
            f"A multipart upload needs a JSON metadata part and a media part, not {len(parts)} "
            "parts."
        )
    meta_part, media_part = parts
    resource = parse_json_object(meta_part.data)
    name, ctype, extra = _metadata_object(
        resource, request.query.get("name"), media_part.headers.get("content-type")
    )
    blobs = state_of(request).store.blobs
    writer = blobs.writer()
    try:
        writer.write(media_part.data)
    except BaseException:
        writer.abort()
        raise
    temp, digest = writer.path, writer.finish()
    try:
        _check_hashes(resource, digest)
    except GcsApiError:
        temp.unlink(missing_ok=True)
        raise
    return await _store_upload(request, bucket, name, temp, digest, ctype, extra)


async def _start_resumable(request: web.Request, bucket: str) -> web.Response:
    state = state_of(request)
    raw = await request.read()
    resource = parse_json_object(raw) if raw.strip() else {}
    name, ctype, extra = _metadata_object(
        resource, request.query.get("name"), request.headers.get("X-Upload-Content-Type")
    )
    upload_id = uuid.uuid4().hex
    await state.store.write(state.store.create_upload, upload_id, bucket, name, ctype, extra)
    location = (
        f"{base_url(request)}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        f"?uploadType=resumable&name={quote(name, safe='')}&upload_id={upload_id}"
    )
    return web.Response(
        status=200, headers={"Location": location, "X-GUploader-UploadID": upload_id}
    )


def parse_content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of ``bytes a-b/N``, ``bytes */N`` or ``bytes a-b/*``.

    All None when the header is absent; ``*`` is None too.
    """
    if header is None:
        return None, None, None
    match = _CONTENT_RANGE.match(header)
    if match is None:
        raise invalid(f"Malformed Content-Range header {header[:100]!r}.")
    first, last, total = match.groups()
    return (
        int(first) if first is not None else None,
        int(last) if last is not None else None,
        None if total == "*" else int(total),
    )


async def resumable_chunk(request: web.Request) -> web.StreamResponse:
    """PUT (or POST) to a session URL: a chunk, the final chunk, or a status query."""
    state = state_of(request)
    upload_id = request.query["upload_id"]
    async with state.upload_lock(upload_id):
        session = state.store.get_upload(upload_id)
        if session is None:
            raise GcsApiError(404, "notFound", f"No such upload session: {upload_id}.")
        if session.generation is not None:
            return _finished_session(request, state, session.bucket, session.name)
        first, last, total = parse_content_range(request.headers.get("Content-Range"))
        path = state.store.upload_path(upload_id)
        received = min(session.received, path.stat().st_size if path.exists() else 0)
        if first is None and last is None and request.headers.get("Content-Range") is None:
            first = 0  # no Content-Range: the body is the whole object
        if first is not None:
            received = await _append_chunk(request, path, received, first, last)
            if total is None and request.headers.get("Content-Range") is None:
                total = received
            await state.store.write(state.store.set_upload_received, upload_id, received)
        if total is not None and received > total:
            raise invalid(f"The upload has {received} bytes, more than the declared {total}.")
        if total is not None and received == total:
            digest = await asyncio.to_thread(state.store.blobs.hash_file, path)
            row = await state.store.write(state.store.finish_upload, upload_id, digest)
            return json_response(request, object_resource(row, session.bucket, base_url(request)))
        headers = {"Range": f"bytes=0-{received - 1}"} if received > 0 else {}
        return web.Response(status=308, headers=headers)


async def _append_chunk(
    request: web.Request, path: Path, received: int, first: int, last: int | None
) -> int:
    """Append the part of this chunk that is new; the new number of bytes received."""
    if first > received:
        raise invalid(
            f"The chunk starts at byte {first} but only {received} bytes were received: "
            "resume from the offset the last answer's Range header gives."
        )
    expected = None if last is None else last - first + 1
    skip = received - first
    seen = 0
    session = SessionFile(path, received)
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            start = min(max(skip - seen, 0), len(chunk))
            seen += len(chunk)
            if start < len(chunk):
                session.append(chunk[start:])
    except BaseException:
        session.rollback()
        raise
    if expected is not None and seen != expected:
        session.rollback()
        raise invalid(f"The chunk has {seen} bytes but its Content-Range announces {expected}.")
    return session.close()


class SessionFile:
    """The bytes of a resumable session, cut back to what the index says was received."""

    def __init__(self, path: Path, received: int) -> None:
        self.received = received
        self._file = open(path, "r+b")  # noqa: SIM115 - closed by close/rollback
        self._file.truncate(received)
        self._file.seek(received)

    def append(self, data: bytes) -> None:
        self._file.write(data)

    def close(self) -> int:
        size = self._file.tell()
        self._file.close()
        return size

    def rollback(self) -> None:
        self._file.truncate(self.received)
        self._file.close()


def _finished_session(
    request: web.Request, state: EmulatorState, bucket: str, name: str
) -> web.Response:
    row = state.store.get_object(bucket, name)
    if row is None:
        raise object_not_found(bucket, name)
    return json_response(request, object_resource(row, bucket, base_url(request)))


async def cancel_resumable(request: web.Request) -> web.Response:
    """DELETE on a session URL: the session is gone; GCS answers 499."""
    state = state_of(request)
    upload_id = request.query.get("upload_id")
    if not upload_id:
        raise invalid("DELETE on an upload URL needs the upload_id of a resumable session.")
    async with state.upload_lock(upload_id):
        if state.store.get_upload(upload_id) is None:
            raise GcsApiError(404, "notFound", f"No such upload session: {upload_id}.")
        await state.store.write(state.store.delete_upload, upload_id)
    return web.Response(status=499)
