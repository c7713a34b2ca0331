"""Middlewares: GCS JSON error bodies for every failure, and the realism knobs.

Errors: a :class:`GcsApiError` becomes its JSON body; aiohttp's own 404/405/413 get the same
shape; anything unexpected is logged and answered 500 ``backendError``, and the server goes on.
Realism: added latency per request, injected 503s, and a token-bucket read-rate limit answered
429 with ``Retry-After``. The emulator's own ``/_emulator/`` routes are exempt.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from aiohttp import web

from bulkmover.emulator.gcs.errors import GcsApiError, backend_error, rate_limited
from bulkmover.emulator.gcs.responses import error_response
from bulkmover.emulator.gcs.state import state_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_REASONS = {
    404: "notFound",
    405: "methodNotAllowed",
    411: "lengthRequired",
    413: "uploadTooLarge",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GcsApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = _HTTP_REASONS.get(exc.status, "invalid")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return error_response(GcsApiError(exc.status, reason, message or "Error"))
    except ConnectionResetError:
        return web.Response(status=499)  # the client hung up; nobody reads this answer
    except Exception as exc:  # noqa: BLE001 - the server must survive any request
        print(
            f"gcs emulator: {request.method} {request.path_qs[:300]} failed: {exc!r}",
            file=sys.stderr,
            flush=True,
        )
        traceback.print_exc(file=sys.stderr)
        return error_response(
            GcsApiError(
                500, "backendError", f"Internal error in the emulator: {type(exc).__name__}"
            )
        )


class ReadLimiter:
    """Token bucket: ``rate`` reads per second, bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a read may go ahead, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def realism_middleware(limiter: ReadLimiter | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def realism(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator/"):
            return await handler(request)
        state = state_of(request)
        knobs = state.realism
        if knobs.request_latency > 0:
            await asyncio.sleep(knobs.request_latency)
        if knobs.fault_rate > 0 and state.rng.random() < knobs.fault_rate:
            raise backend_error()
        if limiter is not None and request.method == "GET":
            wait = limiter.take()
            if wait > 0:
                raise rate_limited(wait)
        return await handler(request)

    return realism
