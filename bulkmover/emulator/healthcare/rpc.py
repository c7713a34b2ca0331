"""google.rpc codes and the API's error body, shared by every handler and by operations.

Handlers raise :class:`ApiFailure`; the error middleware turns it into the real API's answer::

    {"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}
"""

from __future__ import annotations

import json
import math
from enum import IntEnum
from typing import Any

from aiohttp import web


class Code(IntEnum):
    """google.rpc.Code: the ``code`` of an operation error or of a log entry's error."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS: dict[Code, int] = {
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


def status_json(code: Code, message: str) -> dict[str, Any]:
    """A google.rpc.Status as it appears in an operation's ``error`` or a log entry."""
    return {"code": int(code), "message": message}


def error_response(
    code: Code, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": HTTP_STATUS[code], "message": message, "status": code.name}}
    return web.Response(
        status=HTTP_STATUS[code],
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


class ApiFailure(Exception):
    """An error answer: raised anywhere in a handler, rendered by the error middleware."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        retry_after: float | None = None,
        http_status: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.http_status = http_status or HTTP_STATUS[code]
        self.details = details

    def response(self) -> web.Response:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if self.code is Code.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        error: dict[str, Any] = {
            "code": self.http_status,
            "message": self.message,
            "status": self.code.name,
        }
        if self.details:
            error["details"] = self.details
        body = {"error": error}
        return web.Response(
            status=self.http_status,
            text=json.dumps(body),
            content_type="application/json",
            headers=headers or None,
        )


def invalid(message: str) -> ApiFailure:
    return ApiFailure(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ApiFailure:
    return ApiFailure(Code.NOT_FOUND, message)
