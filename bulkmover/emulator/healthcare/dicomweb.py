"""DICOMweb handlers: QIDO-RS search, STOW-RS store, WADO-RS retrieve (instance and metadata),
and DELETE of one instance."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from bulkmover.emulator.healthcare.db import InstanceRow, StoreRow
from bulkmover.emulator.healthcare.dicomfiles import (
    DicomFailure,
    RenderError,
    metadata_json,
    render,
)
from bulkmover.emulator.healthcare.formats import (
    AS_STORED,
    EXPLICIT_LE,
    IMPLICIT_LE,
    ExportFormat,
    split_media_type,
)
from bulkmover.emulator.healthcare.names import check_uid
from bulkmover.emulator.healthcare.qido import Level, build_query, run_query
from bulkmover.emulator.healthcare.requests import store_name
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code, invalid, not_found
from bulkmover.emulator.healthcare.service import Service, service_of

DICOM_JSON = "application/dicom+json"
# DICOM PS3.4 C-STORE failure reasons used in a STOW-RS FailedSOPSequence.
CANNOT_UNDERSTAND = 0xC000
DUPLICATE = 0x0111
STUDY_MISMATCH = 0xA900


def _dicom_json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type=DICOM_JSON, headers=headers
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
        results, more = run_query(svc.db, store.id, query)
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
    return f"{request.scheme}://{request.host}/{request.match_info['version']}"


def _element(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


async def _parts(request: web.Request) -> list[bytes]:
    media, params = split_media_type(request.headers.get("Content-Type", ""))
    if media == "application/dicom":
        return [await request.read()]
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
    reader = await request.multipart()
    parts: list[bytes] = []
    while True:
        part = await reader.next()
        if part is None:
            return parts
        if not isinstance(part, BodyPartReader):
            raise invalid("nested multipart bodies are not supported in STOW-RS")
        parts.append(bytes(await part.read(decode=False)))


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


async def retrieve_instance(request: web.Request) -> web.Response:
    svc, _, inst = _instance(request)
    multipart, fmt = _retrieve_format(request.headers.get("Accept", ""))
    try:
        [(_, data)] = await svc.cpu.run(render, str(svc.db.data_dir / inst.blob), fmt)
    except RenderError as exc:
        raise ApiFailure(
            Code.FAILED_PRECONDITION,
            f"{exc.message}; ask for transfer-syntax=* to get the instance as stored",
            http_status=406,
        ) from None
    syntax = inst.syntax if fmt.transfer_syntax == AS_STORED else fmt.transfer_syntax
    part_type = f"application/dicom; transfer-syntax={syntax}"
    if not multipart:
        return web.Response(body=data, headers={"Content-Type": part_type})
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return web.Response(body=body, headers={"Content-Type": content_type})


async def retrieve_instance_metadata(request: web.Request) -> web.Response:
    svc, store, inst = _instance(request)
    bulk = (
        f"{_base_url(request)}/{store.name.path}/dicomWeb/studies/{inst.study}"
        f"/series/{inst.series}/instances/{inst.sop}"
    )
    metadata = await svc.cpu.run(metadata_json, str(svc.db.data_dir / inst.blob), bulk)
    return _dicom_json_response([metadata])


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
