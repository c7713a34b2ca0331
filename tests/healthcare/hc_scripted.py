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
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkmover.retry import RetryPolicy


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


class TokenEndpoint:
    """OAuth token endpoint: answers a JWT-bearer grant with tok-1, tok-2, ..."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.refuse = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert str(form["assertion"]).count(".") == 2  # a signed JWT
        if self.refuse:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                status=400,
            )
        self.issued += 1
        return web.json_response(
            {
                "access_token": f"tok-{self.issued}",
                "expires_in": self.expires_in,
                "token_type": "Bearer",
            }
        )


async def start_token_endpoint() -> tuple[TokenEndpoint, TestServer]:
    endpoint = TokenEndpoint()
    app = web.Application()
    app.router.add_post("/token", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    endpoint.url = f"http://127.0.0.1:{server.port}/token"
    return endpoint, server


# A throwaway key made for the tests: google-auth signs real JWTs with it.
PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)


def write_key(directory: Path, token_uri: str) -> Path:
    """A service-account key file whose token endpoint is ``token_uri``."""
    key = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": PEM,
        "client_email": "mover@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = directory / "key.json"
    path.write_text(json.dumps(key))
    return path


def secrets_in(text: str) -> list[str]:
    """Which secrets (tokens, the private key) leak into ``text``."""
    marks = ["tok-", "PRIVATE KEY", PEM.splitlines()[1][:20]]
    return [m for m in marks if m in text]
