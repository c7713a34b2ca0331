"""Handlers of ``operations.get/list/cancel`` and the test-only admin listing of operations."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare.db import OperationRow
from bulkmover.emulator.healthcare.requests import (
    dataset_name,
    decode_token,
    encode_token,
    json_response,
    page_size,
)
from bulkmover.emulator.healthcare.rpc import invalid, not_found
from bulkmover.emulator.healthcare.service import Service, service_of
from bulkmover.emulator.healthcare.views import operation_json

_DONE_FILTER = re.compile(r"\s*done\s*[=:]\s*(true|false)\s*", re.IGNORECASE)


def _operation(svc: Service, request: web.Request) -> OperationRow:
    dataset = dataset_name(request)
    svc.require_dataset(dataset)
    name = f"{dataset.path}/operations/{request.match_info['operation']}"
    row = svc.db.operation(name)
    if row is None:
        raise not_found(f"operation {name} not found")
    return svc.engine.live_row(row)


async def get_operation(request: web.Request) -> web.Response:
    svc = service_of(request)
    return json_response(operation_json(_operation(svc, request)))


async def cancel_operation(request: web.Request) -> web.Response:
    """Ask a running operation to stop; on a finished one this changes nothing."""
    svc = service_of(request)
    row = _operation(svc, request)
    if not row.done:
        svc.engine.cancel(row.name)
    return json_response({})


def parse_done_filter(text: str) -> bool | None:
    if not text.strip():
        return None
    match = _DONE_FILTER.fullmatch(text)
    if match is None:
        raise invalid(
            f"unsupported operations filter {text!r}: the emulator understands done=true "
            f"and done=false"
        )
    return match.group(1).lower() == "true"


async def list_operations(request: web.Request) -> web.Response:
    svc = service_of(request)
    dataset = dataset_name(request)
    svc.require_dataset(dataset)
    text = request.query.get("filter", "")
    match svc.knobs.operations_filter:
        case "rejected" if text:
            raise invalid(f"filter is not supported by operations.list (got {text!r})")
        case "ignored":
            text = ""
    done = parse_done_filter(text)
    size = page_size(request, 100, 1000)
    token = decode_token(request.query.get("pageToken", ""))
    if token and not token.isdigit():
        raise invalid("invalid pageToken: pass the nextPageToken of a previous page")
    rows = svc.db.operations(dataset, done, int(token or 0), size + 1)
    body: dict[str, Any] = {
        "operations": [operation_json(svc.engine.live_row(r)) for r in rows[:size]]
    }
    if len(rows) > size:
        body["nextPageToken"] = encode_token(str(rows[size - 1].seq))
    return json_response(body)


def admin_json(row: OperationRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "method": row.method,
        "store": row.store_path,
        "request": row.request,
        "createTime": row.create_time,
        "endTime": row.end_time,
        "done": row.done,
        "cancelRequested": row.cancel_requested,
        "counter": {
            "success": row.success,
            "failure": row.failure,
            "pending": row.pending,
            "skipped": row.skipped,
        },
        "error": row.error,
    }


async def admin_operations(request: web.Request) -> web.Response:
    """Every operation ever started, oldest first, with its request and counters (for tests)."""
    svc = service_of(request)
    rows = svc.db.operations(None, None, 0, 10**9)
    return json_response({"operations": [admin_json(svc.engine.live_row(r)) for r in rows]})
