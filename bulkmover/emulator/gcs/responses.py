"""Request and response helpers shared by the API handlers."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bulkmover.emulator.gcs.errors import GcsApiError, bad_parameter, parse_error
from bulkmover.emulator.gcs.fields import apply_fields, parse_fields
from bulkmover.emulator.gcs.rows import Preconditions
from bulkmover.emulator.serving import origin

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"


def base_url(request: web.Request) -> str:
    """Scheme and host the client used, so links in resources lead back here (the port kept:
    a resumable session's Location without it would send the client to port 80)."""
    return origin(request)


def json_response(request: web.Request, body: Mapping[str, Any], status: int = 200) -> web.Response:
    """A JSON answer, cut down to the request's ``fields`` selection when it has one."""
    spec = request.query.get("fields")
    payload: Any = body
    if spec:
        payload = apply_fields(dict(body), parse_fields(spec))
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="UTF-8",
    )


def json_text_response(text: str, status: int = 200) -> web.Response:
    """An answer whose JSON is already written (ASCII-only, as json.dumps writes it)."""
    return web.Response(
        status=status, body=text.encode(), content_type="application/json", charset="UTF-8"
    )


def error_response(error: GcsApiError) -> web.Response:
    assert error.status is not None
    if error.status == 304:
        return web.Response(status=304)
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return web.Response(
        status=error.status,
        body=json.dumps(error.body()).encode(),
        content_type="application/json",
        charset="UTF-8",
        headers=headers,
    )


async def read_json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}`` unless ``required``."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise parse_error("Required request body is missing: send a JSON object.")
        return {}
    return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise parse_error(f"Parse Error: the body is not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise parse_error("Parse Error: the body must be a JSON object.")
    return value


def int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_parameter(name, value) from None


def preconditions(query: Mapping[str, str], prefix: str = "") -> Preconditions:
    """ifGenerationMatch & co. (``ifSourceGenerationMatch`` & co. with ``prefix='Source'``)."""

    def get(name: str) -> int | None:
        return int_param(query, f"if{prefix}{name}")

    return Preconditions(
        if_generation_match=get("GenerationMatch"),
        if_generation_not_match=get("GenerationNotMatch"),
        if_metageneration_match=get("MetagenerationMatch"),
        if_metageneration_not_match=get("MetagenerationNotMatch"),
    )
