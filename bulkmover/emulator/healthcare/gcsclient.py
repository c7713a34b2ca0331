"""The emulator's own Cloud Storage client: the JSON API over aiohttp, with retries.

The real service reads and writes buckets on the user's behalf; so does the emulator, through
the GCS JSON API of ``--gcs-endpoint`` (our GCS emulator or fake-gcs-server). Transient answers
(408, 429, 5xx, connection errors) are retried with backoff, as a managed service would.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from bulkmover.emulator.healthcare.rpc import Code

if TYPE_CHECKING:
    from bulkmover.emulator.healthcare.iam import AgentAccess

RETRIABLE = {408, 429, 500, 502, 503, 504}
ATTEMPTS = 8


@dataclass(frozen=True)
class GcsObject:
    name: str
    size: int


class GcsError(Exception):
    """Cloud Storage refused or failed a request; ``code`` is the google.rpc code to report."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize_endpoint(value: str) -> str:
    """``127.0.0.1:4443`` or ``http://127.0.0.1:4443/`` -> ``http://127.0.0.1:4443``."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "http://" + value
    return value


class GcsClient:
    """List, download and upload objects; one aiohttp session for the server's lifetime."""

    def __init__(
        self, endpoint: str, session: aiohttp.ClientSession, agent: AgentAccess | None = None
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self._session = session
        self.agent = agent
        """The service agent whose reads are checked against the bucket's IAM policy."""

    async def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        delay = 0.05
        for attempt in range(ATTEMPTS):
            try:
                async with self._session.request(
                    method, url, params=params, data=data, headers=headers
                ) as resp:
                    body = await resp.read()
                    if resp.status < 300:
                        return body
                    if resp.status == 404:
                        raise GcsError(Code.NOT_FOUND, f"{what}: not found in Cloud Storage")
                    if resp.status == 403:
                        raise GcsError(Code.PERMISSION_DENIED, f"{what}: permission denied")
                    if resp.status not in RETRIABLE or attempt == ATTEMPTS - 1:
                        text = body[:200].decode("utf-8", "replace")
                        raise GcsError(
                            Code.UNAVAILABLE if resp.status >= 500 else Code.INVALID_ARGUMENT,
                            f"{what}: Cloud Storage answered {resp.status}: {text}",
                        )
                    retry_after = resp.headers.get("Retry-After", "")
                    if retry_after.isdigit():
                        delay = max(delay, float(retry_after))
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise GcsError(
                        Code.UNAVAILABLE,
                        f"{what}: Cloud Storage at {self.endpoint} is unreachable "
                        f"({type(exc).__name__})",
                    ) from None
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def list_objects(self, bucket: str, prefix: str) -> AsyncIterator[list[GcsObject]]:
        """Pages of objects whose names start with ``prefix``; only a missing token ends it.

        First, as the service agent: PERMISSION_DENIED when the bucket's policy lets it not read.
        """
        if self.agent is not None:
            await self._check_agent(bucket)
        url = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o"
        token: str | None = None
        while True:
            params = {
                "prefix": prefix,
                "maxResults": "1000",
                "fields": "items(name,size),nextPageToken",
            }
            if token:
                params["pageToken"] = token
            body = await self._request("GET", url, params=params, what=f"listing gs://{bucket}")
            page: dict[str, Any] = _json(body)
            yield [GcsObject(str(i["name"]), int(i.get("size", 0))) for i in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return

    async def _check_agent(self, bucket: str) -> None:
        """The bucket's IAM policy, as Cloud Storage would apply it to the agent's reads; a
        server without bucket IAM (any answer but 200: fake-gcs-server) leaves reads allowed."""
        assert self.agent is not None
        policy: dict[str, Any] | None = None
        if bucket not in self.agent.denied_buckets:
            url = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/iam"
            try:
                policy = _json(await self._request("GET", url, what=f"IAM policy of gs://{bucket}"))
            except GcsError:
                policy = None
        if not self.agent.reads(bucket, policy):
            raise GcsError(Code.PERMISSION_DENIED, self.agent.refusal(bucket))

    async def download(self, bucket: str, name: str) -> bytes:
        url = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        return await self._request(
            "GET", url, params={"alt": "media"}, what=f"reading gs://{bucket}/{name}"
        )

    async def upload(self, bucket: str, name: str, data: bytes, content_type: str) -> None:
        url = f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        await self._request(
            "POST",
            url,
            params={"uploadType": "media", "name": name},
            data=data,
            headers={"Content-Type": content_type},
            what=f"writing gs://{bucket}/{name}",
        )

    async def check_bucket(self, bucket: str) -> None:
        """NOT_FOUND (GcsError) when the bucket does not exist."""
        url = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}"
        await self._request("GET", url, what=f"bucket gs://{bucket}")


def _json(body: bytes) -> dict[str, Any]:
    import json

    try:
        value = json.loads(body)
    except ValueError:
        raise GcsError(Code.UNAVAILABLE, "Cloud Storage answered with invalid JSON") from None
    if not isinstance(value, dict):
        raise GcsError(Code.UNAVAILABLE, "Cloud Storage answered with unexpected JSON")
    return value
