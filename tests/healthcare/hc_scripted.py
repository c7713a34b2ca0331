"""A tiny scripted HTTP server for the client's retry, error and auth paths (fixtures in conftest).

The Healthcare emulator covers the API's behaviour; this server covers what an emulator run cannot
force on cue: a reset after the request was read, a given Retry-After, a garbled body. Each test
queues the answers it wants and reads back the requests that arrived.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkmover.healthcare.retry import RetryPolicy


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    reset: bool = False  # drop the connection after reading the request
    delay: float = 0.0


class ScriptedServer:
    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.default = Answer(200, {})
        self.seen: list[Seen] = []
        self.url = ""

    def then(self, *answers: Answer) -> ScriptedServer:
        self.answers.extend(answers)
        return self

    def error(self, status: int, reason: str, message: str = "boom", **headers: str) -> Answer:
        body = {"error": {"code": status, "message": message, "status": reason}}
        return Answer(status, body, dict(headers))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        answer = self.answers.popleft() if self.answers else self.default
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.reset:
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPInternalServerError()  # never delivered: the socket is gone
        if answer.raw is not None:
            return web.Response(status=answer.status, body=answer.raw, headers=answer.headers)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)


async def start_scripted() -> tuple[ScriptedServer, TestServer]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    server.url = f"http://127.0.0.1:{test_server.port}"
    return server, test_server


class RecordingPolicy(RetryPolicy):
    """Retries at once, remembering the Retry-After each wait was asked to honour."""

    def __init__(self, max_attempts: int = 4) -> None:
        super().__init__(max_attempts=max_attempts)
        object.__setattr__(self, "asked", [])

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        self.asked.append((retry, retry_after))  # type: ignore[attr-defined]
        return 0.0


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
