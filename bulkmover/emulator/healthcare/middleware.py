"""What stands between a request and its handler: auth, latency, quotas, faults, error bodies.

Order, as a real front end would apply it: 401 without a bearer token, then the quota of the
request's method family (429 with Retry-After), then injected faults. A 5xx fault is answered
before the handler runs; a connection reset happens after it ran, so the effect (a started
operation, a stored instance) took place and the client cannot tell.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import sys
import traceback
from collections.abc import Awaitable, Callable

from aiohttp import web

from bulkmover.emulator.healthcare import iam, quota_errors
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code, error_response
from bulkmover.emulator.healthcare.service import Service, service_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_API_PATH = re.compile(r"/(v1|v1beta1)/projects/([^/]+)/")


def method_family(request: web.Request) -> tuple[str, str] | None:
    """(project, family) of an API request; None for paths outside the API (admin)."""
    path = request.path
    if path == "/v2/entries:list":
        return "logging", "logging"
    match = _API_PATH.match(path)
    if match is None:
        return None
    project = match.group(2)
    if request.method == "POST" and (path.endswith(":import") or path.endswith(":export")):
        return project, "lro_start"
    if "/operations" in path:
        return project, "operations"
    if "/dicomWeb/" in path:
        return project, "dicomweb"
    return project, "dicom_ops"


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset, without answering."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _check_auth(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiFailure(
            Code.UNAUTHENTICATED,
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token (Authorization: Bearer ...), login cookie or other valid authentication "
            "credential.",
        )


async def _guarded(svc: Service, request: web.Request, handler: Handler) -> web.StreamResponse:
    knobs = svc.knobs
    family = method_family(request)
    if family is None:
        return await handler(request)
    if knobs.require_auth:
        _check_auth(request)
    if knobs.latency > 0:
        await asyncio.sleep(knobs.latency)
    project, name = family
    if knobs.deny and name in knobs.deny.split(","):
        raise ApiFailure(
            Code.PERMISSION_DENIED,
            f"Permission denied on resource project {project} (or it may not exist); the caller"
            f" lacks the permissions of method family {name} (injected by --deny).",
        )
    iam.check_permission(knobs, request)  # --deny-permissions: one IAM permission at a time
    wait = svc.quota.take(project, name)
    if wait is not None:
        raise quota_errors.rate_quota(
            knobs.quota_errors, project, name, knobs.requests_per_minute, wait
        )
    fault = svc.rng.random() < knobs.fault_rate
    if fault:
        kind = svc.rng.choice(["internal", "unavailable", "reset"])
        if kind == "internal":
            raise ApiFailure(
                Code.INTERNAL, "Internal error encountered (injected by --fault-rate)."
            )
        if kind == "unavailable":
            raise ApiFailure(
                Code.UNAVAILABLE, "The service is currently unavailable (injected by --fault-rate)."
            )
    response = await handler(request)
    if knobs.answer_latency > 0:
        await asyncio.sleep(knobs.answer_latency)
    if fault:
        _reset(request)  # the answer below goes nowhere: the socket is gone
    return response


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    svc = service_of(request)
    try:
        return await _guarded(svc, request, handler)
    except ApiFailure as exc:
        return exc.response()
    except web.HTTPNotFound:
        return error_response(
            Code.NOT_FOUND, f"no such API method or resource path: {request.method} {request.path}"
        )
    except web.HTTPMethodNotAllowed:
        return error_response(
            Code.UNIMPLEMENTED, f"method {request.method} is not supported on {request.path}"
        )
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return error_response(Code.INTERNAL, f"emulator error: {type(exc).__name__}: {exc}")
