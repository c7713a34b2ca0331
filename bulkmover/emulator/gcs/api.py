"""JSON API handlers: buckets, and objects' metadata, listing, deletion, patch and copy.

Uploads are in :mod:`.uploads`, downloads in :mod:`.media`, the bulk path in :mod:`.bulk`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from bulkmover.emulator.gcs.errors import GcsApiError, invalid, object_not_found
from bulkmover.emulator.gcs.fields import Selection, apply_fields, parse_fields
from bulkmover.emulator.gcs.globs import compile_glob
from bulkmover.emulator.gcs.listing import ListPage, ListQuery, list_page, parse_max_results
from bulkmover.emulator.gcs.media import send_media
from bulkmover.emulator.gcs.names import check_bucket_name, check_object_name
from bulkmover.emulator.gcs.resources import (
    WRITABLE_EXTRA_FIELDS,
    bucket_resource,
    object_json,
    object_resource,
)
from bulkmover.emulator.gcs.responses import (
    base_url,
    int_param,
    json_response,
    json_text_response,
    preconditions,
    read_json_object,
)
from bulkmover.emulator.gcs.rows import ObjectRow
from bulkmover.emulator.gcs.state import state_of

# ---- buckets -----------------------------------------------------------------------------


async def insert_bucket(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise invalid("Required field 'name' (the bucket name) is missing or not a string.")
    check_bucket_name(name)
    location = str(body.get("location") or "US").upper()
    storage_class = str(body.get("storageClass") or "STANDARD").upper()
    store = state_of(request).store
    row = await store.write(store.create_bucket, name, location, storage_class)
    return json_response(request, bucket_resource(row, base_url(request)))


async def get_bucket(request: web.Request) -> web.Response:
    row = state_of(request).store.require_bucket(request.match_info["bucket"])
    return json_response(request, bucket_resource(row, base_url(request)))


async def delete_bucket(request: web.Request) -> web.Response:
    store = state_of(request).store
    await store.write(store.delete_bucket, request.match_info["bucket"])
    return web.Response(status=204)


async def list_buckets(request: web.Request) -> web.Response:
    query = request.query
    limit = parse_max_results(query.get("maxResults"))
    after = _decode_simple_token(query.get("pageToken", ""))
    rows = state_of(request).store.list_buckets(query.get("prefix", ""), after, limit + 1)
    body: dict[str, Any] = {"kind": "storage#buckets"}
    if rows[:limit]:
        body["items"] = [bucket_resource(r, base_url(request)) for r in rows[:limit]]
    if len(rows) > limit:
        body["nextPageToken"] = base64.urlsafe_b64encode(rows[limit - 1].name.encode()).decode()
    return json_response(request, body)


def _decode_simple_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(f"Invalid pageToken {token[:100]!r}.") from None


# ---- objects -----------------------------------------------------------------------------


async def list_objects(request: web.Request) -> web.Response:
    state = state_of(request)
    bucket = state.store.require_bucket(request.match_info["bucket"])
    query = ListQuery.from_params(request.query)
    if query.glob is not None and state.realism.match_glob_double_star != "any":
        reading = state.realism.match_glob_double_star
        query = replace(query, glob=compile_glob(query.glob.pattern, reading))
    if request.query.get("fields"):
        parse_fields(request.query["fields"])  # a bad selection fails before any latency
    if state.realism.page_latency > 0:
        await asyncio.sleep(state.realism.page_latency)
    page = list_page(state.store, bucket.id, query)
    base = base_url(request)
    if request.query.get("fields"):
        selection = parse_fields(request.query["fields"])
        body: dict[str, Any] = {"kind": "storage#objects"}
        if page.next_page_token is not None:
            body["nextPageToken"] = page.next_page_token
        if page.prefixes:
            body["prefixes"] = page.prefixes
        if page.items:
            cheap = _cheap_item_fields(selection.get("items"), page.items)
            if cheap is not None:
                # Listers ask for a few fields of every item: build just those, not the whole
                # resource (its links and timestamps were most of a page's cost).
                body["items"] = [{k: get(r) for k, get in cheap} for r in page.items]
                selection = {**selection, "items": None}
            else:
                body["items"] = [object_resource(r, bucket.name, base) for r in page.items]
        return json_text_response(json.dumps(apply_fields(body, selection), separators=(",", ":")))
    return json_text_response(page_json(page, bucket.name, base))


_CHEAP_FIELDS: dict[str, Callable[[ObjectRow], Any]] = {
    "name": lambda r: r.name,
    "size": lambda r: str(r.size),
    "generation": lambda r: str(r.generation),
    "metageneration": lambda r: str(r.metageneration),
    "md5Hash": lambda r: r.md5,
    "crc32c": lambda r: r.crc32c,
}


def _cheap_item_fields(
    selection: Selection | None, items: Sequence[ObjectRow]
) -> list[tuple[str, Callable[[ObjectRow], Any]]] | None:
    """The getters for an ``items(...)`` selection of plain fields only, else None."""
    if not selection or "*" in selection or any(r.extra for r in items):
        return None
    if any(key not in _CHEAP_FIELDS or sub is not None for key, sub in selection.items()):
        return None
    return [(key, _CHEAP_FIELDS[key]) for key in selection]


def page_json(page: ListPage, bucket: str, base: str) -> str:
    """A storage#objects page as JSON text (the fast path, without ``fields``)."""
    parts = ['{"kind":"storage#objects"']
    if page.next_page_token is not None:
        parts.append(f',"nextPageToken":{json.dumps(page.next_page_token)}')
    if page.prefixes:
        parts.append(',"prefixes":' + json.dumps(page.prefixes, separators=(",", ":")))
    if page.items:
        parts.append(',"items":[' + ",".join(object_json(r, bucket, base) for r in page.items))
        parts.append("]")
    parts.append("}")
    return "".join(parts)


def current_object(request: web.Request, bucket: str, name: str) -> ObjectRow:
    """The live object, honouring ``generation`` and the read preconditions of the query."""
    row = state_of(request).store.require_object(bucket, name)
    generation = int_param(request.query, "generation")
    if generation is not None and generation != row.generation:
        raise object_not_found(bucket, name)
    preconditions(request.query).check(row, read=True)
    return row


async def get_object(request: web.Request) -> web.StreamResponse:
    bucket, name = request.match_info["bucket"], request.match_info["object"]
    row = current_object(request, bucket, name)
    if request.query.get("alt", "json") == "media":
        return await send_media(request, bucket, row)
    return json_response(request, object_resource(row, bucket, base_url(request)))


async def download_object(request: web.Request) -> web.StreamResponse:
    bucket, name = request.match_info["bucket"], request.match_info["object"]
    return await send_media(request, bucket, current_object(request, bucket, name))


async def delete_object(request: web.Request) -> web.Response:
    store = state_of(request).store
    bucket, name = request.match_info["bucket"], request.match_info["object"]
    generation = int_param(request.query, "generation")
    if generation is not None and generation != store.require_object(bucket, name).generation:
        raise object_not_found(bucket, name)
    await store.write(store.delete_object, bucket, name, preconditions(request.query))
    return web.Response(status=204)


async def patch_object(request: web.Request) -> web.Response:
    """objects.patch: change contentType and the optional fields; ``null`` removes one."""
    state = state_of(request)
    bucket, name = request.match_info["bucket"], request.match_info["object"]
    body = await read_json_object(request)
    row = state.store.require_object(bucket, name)
    content_type, extra = merge_metadata(row, body)
    updated = await state.store.write(
        state.store.patch_object, bucket, name, content_type, extra, preconditions(request.query)
    )
    return json_response(request, object_resource(updated, bucket, base_url(request)))


def merge_metadata(row: ObjectRow, patch: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    content_type = row.content_type
    if "contentType" in patch:
        value = patch["contentType"]
        content_type = None if value is None else str(value)
    extra = row.extra_fields()
    for key in WRITABLE_EXTRA_FIELDS:
        if key not in patch:
            continue
        value = patch[key]
        if value is None:
            extra.pop(key, None)
        elif key == "metadata":
            if not isinstance(value, dict):
                raise invalid("Field 'metadata' must be an object of string values.")
            merged = dict(extra.get("metadata", {}))
            for k, v in value.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[str(k)] = str(v)
            extra["metadata"] = merged
        else:
            extra[key] = str(value)
    return content_type, extra


def extra_from_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """The optional fields of an object resource a client sent with an upload."""
    extra: dict[str, Any] = {}
    for key in WRITABLE_EXTRA_FIELDS:
        value = resource.get(key)
        if value is None:
            continue
        if key == "metadata":
            if not isinstance(value, dict):
                raise invalid("Field 'metadata' must be an object of string values.")
            extra[key] = {str(k): str(v) for k, v in value.items() if v is not None}
        else:
            extra[key] = str(value)
    return extra


_COPY_PATH = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+?)/(copyTo|rewriteTo)/b/([^/]+)/o/(.+)$")
_MOVE_PATH = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+?)/moveTo/o/(.+)$")
_OBJECT_METHOD = re.compile(r"^/storage/v1/b/([^/]+)/o/([^/]+)/([A-Za-z]+)(?:/|$)")


async def copy_or_rewrite(request: web.Request) -> web.Response:
    """objects.copy, objects.rewrite (one step: the bytes are shared, not copied) and
    objects.move; any other POST on an object is a method the emulator does not have.

    The path is split on its raw (still percent-encoded) form, where a ``/`` inside an object
    name is ``%2F``, so names that contain ``/copyTo/`` stay unambiguous.
    """
    raw_path = request.raw_path.split("?", 1)[0]
    match = _COPY_PATH.match(raw_path)
    if match is not None:
        src_bucket, src_name, verb, dst_bucket, dst_name = (unquote(g) for g in match.groups())
        return await _copy(request, verb, src_bucket, src_name, dst_bucket, dst_name)
    move = _MOVE_PATH.match(raw_path)
    if move is not None:
        bucket, src_name, dst_name = (unquote(g) for g in move.groups())
        return await _move(request, bucket, src_name, dst_name)
    # An unknown method of an existing object: clients such as gcsfs read 404 as "the source
    # is missing", so the answer says what is missing (the method), as a front end would.
    method = _OBJECT_METHOD.match(raw_path)
    if method is not None:
        bucket, name, verb = unquote(method.group(1)), unquote(method.group(2)), method.group(3)
        state_of(request).store.require_object(bucket, name)
        raise GcsApiError(
            501,
            "notImplemented",
            f"Method objects.{verb.removesuffix('To')} (POST .../o/{{object}}/{verb}) is not "
            "implemented by the emulator.",
        )
    raise GcsApiError(404, "notFound", f"No such method: POST {request.path[:200]}")


async def _move(request: web.Request, bucket: str, src_name: str, dst_name: str) -> web.Response:
    """objects.move within a bucket: the destination appears, then the source is deleted."""
    store = state_of(request).store
    check_object_name(dst_name)
    source = store.require_object(bucket, src_name)
    generation = int_param(request.query, "sourceGeneration")
    if generation is not None and generation != source.generation:
        raise object_not_found(bucket, src_name)
    preconditions(request.query, "Source").check(source)
    row = await store.write(
        store.copy_object, bucket, src_name, bucket, dst_name, preconditions(request.query)
    )
    await store.write(store.delete_object, bucket, src_name)
    return json_response(request, object_resource(row, bucket, base_url(request)))


async def _copy(
    request: web.Request, verb: str, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str
) -> web.Response:
    store = state_of(request).store
    check_object_name(dst_name)
    body = await read_json_object(request, required=False)
    source = store.require_object(src_bucket, src_name)
    preconditions(request.query, "Source").check(source)
    row = await store.write(
        store.copy_object, src_bucket, src_name, dst_bucket, dst_name, preconditions(request.query)
    )
    if body:
        content_type, extra = merge_metadata(row, body)
        row = await store.write(store.patch_object, dst_bucket, dst_name, content_type, extra)
    resource = object_resource(row, dst_bucket, base_url(request))
    if verb == "copyTo":
        return json_response(request, resource)
    return json_response(
        request,
        {
            "kind": "storage#rewriteResponse",
            "totalBytesRewritten": str(row.size),
            "objectSize": str(row.size),
            "done": True,
            "resource": resource,
        },
    )
