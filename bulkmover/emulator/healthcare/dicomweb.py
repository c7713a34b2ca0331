"""DICOMweb handlers: QIDO-RS search, STOW-RS store, WADO-RS retrieve (instance and metadata),
and DELETE of one instance."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare.db import InstanceRow, StoreRow
from bulkmover.emulator.healthcare.dicomfiles import (
    DicomFailure,
    RenderError,
    attributes_json,
    bulk_value,
    metadata_json,
    render,
)
from bulkmover.emulator.healthcare.formats import (
    AS_STORED,
    EXPLICIT_LE,
    IMPLICIT_LE,
    ExportFormat,
)
from bulkmover.emulator.healthcare.names import check_uid
from bulkmover.emulator.healthcare.qido import Level, build_query, run_query
from bulkmover.emulator.healthcare.requests import store_name
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code, invalid, not_found
from bulkmover.emulator.healthcare.service import Service, service_of
from bulkmover.emulator.mediatypes import split_media_type
from bulkmover.emulator.serving import origin

DICOM_JSON = "application/dicom+json"
# DICOM PS3.4 C-STORE failure reasons used in a STOW-RS FailedSOPSequence.
CANNOT_UNDERSTAND = 0xC000
DUPLICATE = 0x0111
STUDY_MISMATCH = 0xA900


def _dicom_json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """DICOM JSON as Google sends it: ``application/dicom+json`` without a charset parameter
    (dicomweb-client compares the whole header, and ignores a STOW answer with one)."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={**(headers or {}), "Content-Type": DICOM_JSON},
    )


def _uids(request: web.Request) -> tuple[str | None, str | None, str | None]:
    m = request.match_info
    study = check_uid("StudyInstanceUID", m["study"]) if "study" in m else None
    series = check_uid("SeriesInstanceUID", m["series"]) if "series" in m else None
    instance = check_uid("SOPInstanceUID", m["instance"]) if "instance" in m else None
    return study, series, instance


def _search(level: Level) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The QIDO-RS handler of one level (studies, series or instances)."""

    async def handler(request: web.Request) -> web.Response:
        svc = service_of(request)
        store = svc.require_store(store_name(request))
        study, series, _ = _uids(request)
        query = build_query(level, study, series, request.query)
        results, more, blobs = run_query(svc.db, store.id, query)
        if query.from_files:
            keywords = sorted(query.from_files)
            for index, blob in enumerate(blobs):
                extra = await svc.cpu.run(attributes_json, str(svc.db.data_dir / blob), keywords)
                results[index] = dict(sorted({**results[index], **extra}.items()))
        headers = None
        if more:
            headers = {
                "Warning": '299 healthcare.googleapis.com "There are additional results that '
                'can be requested (raise offset)"'
            }
        return _dicom_json_response(results, headers=headers)

    return handler


search_studies = _search("study")
search_series = _search("series")
search_instances = _search("instance")


def _base_url(request: web.Request) -> str:
    """Where the client reached this API version (``serving.origin``: the port kept)."""
    return f"{origin(request)}/{request.match_info['version']}"


def _element(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


async def _parts(request: web.Request) -> list[bytes]:
    """The instances of a STOW-RS body; 400 when there are none or the body is cut short."""
    media, params = split_media_type(request.headers.get("Content-Type", ""))
    if media == "application/dicom":
        data = await request.read()
        if not data:
            raise invalid("STOW-RS request body is empty: send at least one DICOM instance")
        return [data]
    if media != "multipart/related" or "boundary" not in params:
        raise ApiFailure(
            Code.INVALID_ARGUMENT,
            'STOW-RS needs Content-Type: multipart/related; type="application/dicom"; '
            "boundary=... (or application/dicom for one instance)",
            http_status=415,
        )
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise ApiFailure(
            Code.INVALID_ARGUMENT,
            f'unsupported STOW-RS part type {part_type!r}: send type="application/dicom"',
            http_status=415,
        )
    raw = await request.read()
    if not raw.strip():
        raise invalid("STOW-RS request body is empty: send at least one DICOM instance")
    parts = _split_multipart(raw, params["boundary"])
    if not parts:
        raise invalid("STOW-RS multipart body holds no parts: send at least one DICOM instance")
    return parts


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The parts' contents of a complete multipart body (CRLF, or bare LF, line breaks)."""
    marker = b"--" + boundary.encode("latin-1")
    if not body.startswith(marker):  # a preamble (dicomweb-client sends a CRLF first)
        at = body.find(b"\n" + marker)
        if at < 0:
            raise invalid(f"malformed multipart body: no boundary {boundary!r} found")
        body = body[at + 1 :]
    chunks = body.split(b"\n" + marker)
    parts: list[bytes] = []
    closed = False
    for index, chunk in enumerate(chunks):
        if index == 0:
            if not chunk.startswith(marker):
                raise invalid("malformed multipart body: it does not start with a boundary")
            chunk = chunk[len(marker) :]
        if chunk.startswith(b"--"):
            closed = True
            break
        if index + 1 == len(chunks):
            break  # a part without a closing boundary: the body was cut short
        parts.append(_part_content(chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""))
    if not closed:
        raise invalid(
            "malformed multipart body: the closing boundary is missing (the body may have been "
            "cut short)"
        )
    return parts


def _part_content(part: bytes) -> bytes:
    """A part's bytes after its header lines and blank line, without the delimiter's CR."""
    for blank in (b"\r\n", b"\n"):
        if part.startswith(blank):  # no headers at all
            data = part[len(blank) :]
            break
    else:
        ends = [(part.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if sep in part]
        if not ends:
            raise invalid("malformed multipart body: a part has no blank line after its headers")
        at, sep = min(ends)
        data = part[at + len(sep) :]
    return data[:-1] if data.endswith(b"\r") else data


async def store_instances(request: web.Request) -> web.Response:
    """STOW-RS: store each part, answer which instances were stored and which failed."""
    svc = service_of(request)
    store = svc.require_store(store_name(request))
    study, _, _ = _uids(request)
    base = f"{_base_url(request)}/{store.name.path}/dicomWeb"
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for data in await _parts(request):
        staging = svc.db.staging_dir / f"stow-{uuid.uuid4().hex}.dcm"
        result = await svc.engine.parse((data, str(staging)))
        if isinstance(result, DicomFailure):
            failed.append({"00081197": _element("US", CANNOT_UNDERSTAND)})
            continue
        refs = {
            "00081150": _element("UI", result.sop_class_uid),
            "00081155": _element("UI", result.sop_uid),
        }
        if study is not None and result.study_uid != study:
            staging.unlink(missing_ok=True)
            failed.append({**refs, "00081197": _element("US", STUDY_MISMATCH)})
            continue
        outcome = svc.engine.store_instance(store.id, result, staging, "")
        if outcome == "duplicate":
            failed.append({**refs, "00081197": _element("US", DUPLICATE)})
            continue
        url = (
            f"{base}/studies/{result.study_uid}/series/{result.series_uid}"
            f"/instances/{result.sop_uid}"
        )
        stored.append({**refs, "00081190": _element("UR", url)})
    svc.db.commit()
    body: dict[str, Any] = {}
    if study is not None:
        body["00081190"] = _element("UR", f"{base}/studies/{study}")
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    status = 200 if not failed else (202 if stored else 409)
    return _dicom_json_response(body, status)


def _retrieve_format(accept: str) -> tuple[bool, ExportFormat]:
    """(multipart?, format) from an Accept header; the default is explicit VR little endian."""
    for choice in (accept or "*/*").split(","):
        media, params = split_media_type(choice)
        syntax = params.get("transfer-syntax", EXPLICIT_LE)
        if media == "multipart/related":
            part_type = params.get("type", "application/dicom").lower()
            if part_type != "application/dicom":
                continue
            multipart = True
        elif media == "application/dicom":
            multipart = False
        elif media in ("*/*", "multipart/*"):
            multipart, syntax = True, params.get("transfer-syntax", EXPLICIT_LE)
        else:
            continue
        if syntax in (AS_STORED, EXPLICIT_LE, IMPLICIT_LE):
            return multipart, ExportFormat("dicom", syntax)
    raise ApiFailure(
        Code.INVALID_ARGUMENT,
        f'cannot produce {accept!r}: ask for multipart/related; type="application/dicom" '
        f"(or application/dicom) with transfer-syntax=*, {EXPLICIT_LE} or {IMPLICIT_LE}",
        http_status=406,
    )


def _instance(request: web.Request) -> tuple[Service, StoreRow, InstanceRow]:
    """The instance a studies/{s}/series/{se}/instances/{i} path names, or NOT_FOUND."""
    svc = service_of(request)
    store = svc.require_store(store_name(request))
    study, series, sop = _uids(request)
    assert study and series and sop
    inst = svc.db.instance(store.id, study, series, sop)
    if inst is None:
        raise not_found(f"instance /studies/{study}/series/{series}/instances/{sop} not found")
    return svc, store, inst


def _instance_url(request: web.Request, store: StoreRow, inst: InstanceRow) -> str:
    return (
        f"{_base_url(request)}/{store.name.path}/dicomWeb/studies/{inst.study}"
        f"/series/{inst.series}/instances/{inst.sop}"
    )


def _under(request: web.Request) -> tuple[Service, StoreRow, list[InstanceRow]]:
    """The instances of the study or series the path names (import order), or NOT_FOUND."""
    svc = service_of(request)
    store = svc.require_store(store_name(request))
    study, series, _ = _uids(request)
    rows = svc.db.instances_under(store.id, study, series, None)
    if not rows:
        what = f"/studies/{study}" + (f"/series/{series}" if series else "")
        raise not_found(f"{'series' if series else 'study'} {what} not found")
    return svc, store, rows


async def _render_dicom(svc: Service, inst: InstanceRow, fmt: ExportFormat) -> bytes:
    try:
        [(_, data)] = await svc.cpu.run(render, str(svc.db.data_dir / inst.blob), fmt)
    except RenderError as exc:
        raise ApiFailure(
            Code.FAILED_PRECONDITION,
            f"{exc.message}; ask for transfer-syntax=* to get the instance as stored",
            http_status=406,
        ) from None
    return data


def _part_type(inst: InstanceRow, fmt: ExportFormat) -> str:
    syntax = inst.syntax if fmt.transfer_syntax == AS_STORED else fmt.transfer_syntax
    return f"application/dicom; transfer-syntax={syntax}"


def _multipart_head(boundary: str, part_type: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()


def _multipart_response(parts: list[tuple[str, bytes]], part_type: str) -> web.Response:
    """``multipart/related`` of (part Content-Type, bytes) pairs, CRLF framed."""
    boundary = uuid.uuid4().hex
    body = b"".join(_multipart_head(boundary, kind) + data + b"\r\n" for kind, data in parts)
    body += f"--{boundary}--\r\n".encode()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return web.Response(body=body, headers={"Content-Type": content_type})


async def retrieve_instance(request: web.Request) -> web.Response:
    svc, _, inst = _instance(request)
    multipart, fmt = _retrieve_format(request.headers.get("Accept", ""))
    data = await _render_dicom(svc, inst, fmt)
    if not multipart:
        return web.Response(body=data, headers={"Content-Type": _part_type(inst, fmt)})
    return _multipart_response([(_part_type(inst, fmt), data)], "application/dicom")


async def retrieve_many(request: web.Request) -> web.StreamResponse:
    """WADO-RS of a whole study or series: every instance, one part each, streamed."""
    svc, _, rows = _under(request)
    multipart, fmt = _retrieve_format(request.headers.get("Accept", ""))
    if not multipart:
        raise ApiFailure(
            Code.INVALID_ARGUMENT,
            'a study or series is retrieved as multipart/related; type="application/dicom"',
            http_status=406,
        )
    boundary = uuid.uuid4().hex
    first = await _render_dicom(svc, rows[0], fmt)  # a refusal is still an answer of its own
    response = web.StreamResponse(
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        }
    )
    await response.prepare(request)
    for index, inst in enumerate(rows):
        data = first if index == 0 else await _render_dicom(svc, inst, fmt)
        await response.write(_multipart_head(boundary, _part_type(inst, fmt)) + data + b"\r\n")
    await response.write(f"--{boundary}--\r\n".encode())
    await response.write_eof()
    return response


async def retrieve_instance_metadata(request: web.Request) -> web.Response:
    svc, store, inst = _instance(request)
    url = _instance_url(request, store, inst)
    metadata = await svc.cpu.run(metadata_json, str(svc.db.data_dir / inst.blob), url)
    return _dicom_json_response([metadata])


async def retrieve_many_metadata(request: web.Request) -> web.Response:
    """WADO-RS metadata of a study or series: one DICOM JSON object per instance."""
    svc, store, rows = _under(request)
    results = [
        await svc.cpu.run(
            metadata_json, str(svc.db.data_dir / inst.blob), _instance_url(request, store, inst)
        )
        for inst in rows
    ]
    return _dicom_json_response(results)


def _frame_numbers(raw: str) -> list[int]:
    numbers: list[int] = []
    for item in raw.split(","):
        if not item.strip().isdigit() or int(item) < 1:
            raise invalid(f"invalid frame list {raw!r}: give frame numbers from 1, like 1,2,3")
        numbers.append(int(item))
    return numbers


def _frames_syntax(accept: str) -> str:
    """The transfer syntax frames are asked for (uncompressed, or ``*`` as stored)."""
    for choice in (accept or "*/*").split(","):
        media, params = split_media_type(choice)
        part_type = params.get("type", "application/octet-stream").lower()
        if media == "*/*" or (
            media == "multipart/related" and part_type in ("application/octet-stream", "*/*")
        ):
            syntax = params.get("transfer-syntax", EXPLICIT_LE)
            if syntax in (EXPLICIT_LE, AS_STORED):
                return syntax
    raise ApiFailure(
        Code.INVALID_ARGUMENT,
        f"cannot produce frames as {accept!r}: ask for multipart/related; "
        f'type="application/octet-stream" (transfer-syntax={EXPLICIT_LE} or *)',
        http_status=406,
    )


async def retrieve_frames(request: web.Request) -> web.Response:
    """WADO-RS frames: each frame's pixel data, uncompressed (or as stored with ``*``)."""
    svc, _, inst = _instance(request)
    numbers = _frame_numbers(request.match_info["frames"])
    syntax = _frames_syntax(request.headers.get("Accept", ""))
    try:
        frames = await svc.cpu.run(
            render, str(svc.db.data_dir / inst.blob), ExportFormat("octet", syntax)
        )
    except RenderError as exc:
        raise ApiFailure(Code.FAILED_PRECONDITION, exc.message, http_status=406) from None
    missing = [n for n in numbers if n > len(frames)]
    if missing:
        raise invalid(f"frame {missing[0]} does not exist: the instance has {len(frames)} frame(s)")
    sent = inst.syntax if syntax == AS_STORED else syntax
    kind = f"application/octet-stream; transfer-syntax={sent}"
    return _multipart_response(
        [(kind, frames[n - 1][1]) for n in numbers], "application/octet-stream"
    )


async def retrieve_bulkdata(request: web.Request) -> web.Response:
    """WADO-RS bulk data at a BulkDataURI the instance's metadata gave."""
    svc, _, inst = _instance(request)
    tag_path = request.match_info["path"]
    data = await svc.cpu.run(bulk_value, str(svc.db.data_dir / inst.blob), tag_path)
    if data is None:
        raise not_found(f"no bulk data at {tag_path!r} in instance {inst.sop}")
    return _multipart_response([("application/octet-stream", data)], "application/octet-stream")


async def delete_instance(request: web.Request) -> web.Response:
    """DELETE studies/{s}/series/{se}/instances/{i}: 200 with an empty body, as the API does.

    Lets tests take an instance away behind an importer's back (``bulkmover verify``)."""
    svc, store, inst = _instance(request)
    svc.db.conn.execute(
        "DELETE FROM instances WHERE store_id = ? AND sop = ?", (store.id, inst.sop)
    )
    svc.db.commit()
    (svc.db.data_dir / inst.blob).unlink(missing_ok=True)
    return web.json_response({})
