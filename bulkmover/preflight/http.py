"""One JSON call with a short retry (the preflight must be quick, also when nothing answers).

Transient answers (429, 5xx, connection errors) are retried a few times through
``bulkmover.retry``; whatever comes last is returned as a :class:`Reply`, never raised: a
failed call is a check's finding, not an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from bulkmover.errors import one_line
from bulkmover.healthcare.auth import Credentials
from bulkmover.retry import HEALTHCARE, Outcome, RetryPolicy, send_with_retries

POLICY = RetryPolicy(max_attempts=6, base_delay=0.1, max_delay=1.0)
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)


@dataclass(frozen=True)
class Reply:
    status: int | None
    """None: no answer (connection refused, reset, timeout)."""
    body: Any
    message: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    def say(self) -> str:
        """The failure in a few words: ``403: Permission ... denied``."""
        if self.status is None:
            return f"no answer ({self.message})"
        return f"{self.status}: {self.message}" if self.message else str(self.status)


class JsonHttp:
    """``async with JsonHttp(credentials) as http: reply = await http.call("GET", url)``."""

    def __init__(self, credentials: Credentials, policy: RetryPolicy = POLICY) -> None:
        self.credentials = credentials
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> JsonHttp:
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        starts_operation: bool = False,
    ) -> Reply:
        assert self._session is not None, "use JsonHttp in `async with`"
        session = self._session

        async def attempt(number: int) -> tuple[Outcome, Reply]:
            headers = await self.credentials.headers()
            try:
                async with session.request(
                    method, url, params=params, json=body, headers=headers
                ) as resp:
                    raw = await resp.read()
                    reply = _reply(resp.status, raw)
                    return Outcome(resp.status), reply
            except aiohttp.ClientConnectorError as exc:
                return Outcome(None, connected=False), Reply(None, None, _why(exc))
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Outcome(None), Reply(None, None, _why(exc))

        last = await send_with_retries(
            attempt, self.policy, HEALTHCARE, starts_operation=starts_operation
        )
        return last.detail


def _why(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 160)


def _reply(status: int, raw: bytes) -> Reply:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return Reply(status, None, one_line(raw.decode("utf-8", "replace"), 200))
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message", ""))
    return Reply(status, body, one_line(message, 240))
