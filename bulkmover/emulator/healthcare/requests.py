"""Reading requests the way the API does: strict JSON bodies, names from the path, page tokens.

The real API rejects unknown JSON fields and wrong types with 400 INVALID_ARGUMENT; so does the
emulator, naming the field, so that a misspelt request fails here as it would in the cloud.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare.names import DatasetName, StoreName
from bulkmover.emulator.healthcare.rpc import invalid

# A body schema: field -> python type, or a nested schema (dict) for a message field.
Schema = dict[str, Any]

TYPE_NAMES = {str: "TYPE_STRING", int: "TYPE_INT32", bool: "TYPE_BOOL", list: "TYPE_LIST"}


async def read_json(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The request's JSON object, checked against ``schema``; an empty body is ``{}``."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid JSON payload received. {exc}.") from None
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. The body must be a JSON object.")
    check_fields(body, schema, "")
    return body


def check_fields(body: dict[str, Any], schema: Schema, where: str) -> None:
    for key, value in body.items():
        path = f"{where}{key}"
        if key not in schema:
            known = ", ".join(schema) or "none"
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{key}" at '
                f"'{where.rstrip('.') or 'root'}': Cannot find field (known fields: {known})."
            )
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise invalid(f"Invalid value at '{path}': expected a JSON object, got {value!r}")
            check_fields(value, expected, path + ".")
        elif expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            if not (isinstance(value, str) and value.isdigit()):
                raise invalid(f"Invalid value at '{path}' ({TYPE_NAMES[int]}), {value!r}")
        elif expected is not Any and expected is not int and not isinstance(value, expected):
            raise invalid(f"Invalid value at '{path}' ({TYPE_NAMES.get(expected, '?')}), {value!r}")


def dataset_name(request: web.Request) -> DatasetName:
    m = request.match_info
    return DatasetName(m["project"], m["location"], m["dataset"])


def store_name(request: web.Request) -> StoreName:
    m = request.match_info
    return StoreName(m["project"], m["location"], m["dataset"], m["store"])


def version(request: web.Request) -> str:
    return request.match_info["version"]


def page_size(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("pageSize", "")
    if not raw:
        return default
    if not raw.isdigit():
        raise invalid(f"invalid pageSize {raw!r}: give a positive integer")
    return max(1, min(int(raw), maximum)) if int(raw) > 0 else default


def encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The position a page token stands for; 400 for a token this server did not issue."""
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        message = f"invalid pageToken {token[:40]!r}: pass the nextPageToken of a previous page"
        raise invalid(message) from None


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
