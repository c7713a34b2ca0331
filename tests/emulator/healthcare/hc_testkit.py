"""Test helpers for the Healthcare API emulator: an async HTTP client, corpus upload, polling.

Tests share one emulator per session, so every test works in its own dataset and store
(``fresh_store``) and its own bucket, and asserts only on what it created.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bulkmover.corpus import CorpusFile, CorpusSpec, iter_corpus
from bulkmover.emulator.processes import RunningServer as _RunningServer

StartHc = Callable[..., _RunningServer]
"""The ``start_hc`` fixture: starts a Healthcare emulator with extra flags."""

PROJECT = "proj"
LOCATION = "us-central1"


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Hc:
    """Raw HTTP to the emulator (no client library), so tests see exactly what it answers."""

    def __init__(self, url: str, session: aiohttp.ClientSession, version: str = "v1") -> None:
        self.url = url
        self.session = session
        self.version = version

    def path(self, resource: str) -> str:
        return f"{self.url}/{self.version}/{resource}"

    async def call(
        self,
        method: str,
        resource: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        raw_url: str | None = None,
    ) -> Answer:
        url = raw_url or self.path(resource)
        if body is not None:
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.request(
            method, url, data=data, params=params, headers=headers
        ) as resp:
            return Answer(resp.status, dict(resp.headers), await resp.read())

    async def ok(self, method: str, resource: str, body: Any = None, **kw: Any) -> Any:
        answer = await self.call(method, resource, body, **kw)
        assert answer.status == 200, (answer.status, answer.body[:500])
        return answer.json() if answer.body else {}

    async def create_store(self, dataset: str | None = None, store: str | None = None) -> str:
        """A new dataset and store; returns the store's resource name."""
        dataset = dataset or unique("ds")
        store = store or unique("store")
        base = f"projects/{PROJECT}/locations/{LOCATION}"
        answer = await self.call("POST", f"{base}/datasets", params={"datasetId": dataset})
        assert answer.status in (200, 409), answer.body
        await self.ok(
            "POST", f"{base}/datasets/{dataset}/dicomStores", {}, params={"dicomStoreId": store}
        )
        return f"{base}/datasets/{dataset}/dicomStores/{store}"

    async def start_import(self, store: str, uri: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.ok(
            "POST", f"{store}:import", {"gcsSource": {"uri": uri}}
        )
        return result

    async def wait(self, name: str, limit: float = 60.0) -> dict[str, Any]:
        """Poll until the operation is done (failing the test after ``limit`` seconds)."""
        deadline = time.monotonic() + limit
        while True:
            op: dict[str, Any] = await self.ok("GET", name)
            if op.get("done"):
                return op
            assert time.monotonic() < deadline, f"operation {name} still running: {op}"
            await asyncio.sleep(0.05)

    async def import_and_wait(self, store: str, uri: str, limit: float = 60.0) -> dict[str, Any]:
        op = await self.start_import(store, uri)
        return await self.wait(op["name"], limit)

    async def log_entries(self, op_name: str, page_size: int = 1000) -> list[dict[str, Any]]:
        op_id = op_name.rsplit("/", 1)[1]
        entries: list[dict[str, Any]] = []
        token = ""
        while True:
            body: dict[str, Any] = {
                "resourceNames": [f"projects/{PROJECT}"],
                "filter": f'operation.id="{op_id}"',
                "pageSize": page_size,
            }
            if token:
                body["pageToken"] = token
            answer = await self.call("POST", "", body, raw_url=f"{self.url}/v2/entries:list")
            assert answer.status == 200, answer.body
            page = answer.json()
            entries += page.get("entries", [])
            token = page.get("nextPageToken", "")
            if not token:
                return entries

    async def admin_operations(self) -> list[dict[str, Any]]:
        answer = await self.call("GET", "", raw_url=f"{self.url}/_emulator/operations")
        assert answer.status == 200
        result: list[dict[str, Any]] = answer.json()["operations"]
        return result


def counter(op: dict[str, Any]) -> dict[str, int]:
    """An operation's counter as ints (absent = 0)."""
    raw = op.get("metadata", {}).get("counter", {})
    return {k: int(raw.get(k, "0")) for k in ("success", "failure", "pending")}


def corpus(
    studies: int, series: int = 1, instances: int = 1, bad: int = 0, seed: int = 1
) -> list[CorpusFile]:
    spec = CorpusSpec(
        studies=studies,
        series_per_study=series,
        instances_per_series=instances,
        bad_files=bad,
        seed=seed,
    )
    return list(iter_corpus(spec))


async def make_bucket(session: aiohttp.ClientSession, gcs_url: str, bucket: str) -> None:
    async with session.post(f"{gcs_url}/storage/v1/b", json={"name": bucket}) as resp:
        assert resp.status in (200, 409), await resp.text()


async def put_object(
    session: aiohttp.ClientSession, gcs_url: str, bucket: str, name: str, data: bytes
) -> None:
    async with session.post(
        f"{gcs_url}/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "media", "name": name},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def upload(
    session: aiohttp.ClientSession,
    gcs_url: str,
    bucket: str,
    files: Iterable[tuple[str, bytes]],
    *,
    bulk: bool = True,
) -> None:
    """Put ``(name, bytes)`` objects: one bulk request to our GCS emulator, else one by one."""
    await make_bucket(session, gcs_url, bucket)
    items = list(files)
    if bulk:
        lines = b"".join(
            json.dumps({"name": name, "content_b64": base64.b64encode(data).decode()}).encode()
            + b"\n"
            for name, data in items
        )
        async with session.post(f"{gcs_url}/_emulator/b/{bucket}/bulk", data=lines) as resp:
            assert resp.status == 200, await resp.text()
        return
    semaphore = asyncio.Semaphore(16)

    async def one(name: str, data: bytes) -> None:
        async with semaphore:
            await put_object(session, gcs_url, bucket, name, data)

    await asyncio.gather(*(one(name, data) for name, data in items))


async def list_names(
    session: aiohttp.ClientSession, gcs_url: str, bucket: str, prefix: str
) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        params = {"prefix": prefix}
        if token:
            params["pageToken"] = token
        async with session.get(f"{gcs_url}/storage/v1/b/{bucket}/o", params=params) as resp:
            page = await resp.json()
        names += [item["name"] for item in page.get("items", [])]
        token = page.get("nextPageToken", "")
        if not token:
            return names


async def get_object(session: aiohttp.ClientSession, gcs_url: str, bucket: str, name: str) -> bytes:
    from urllib.parse import quote

    async with session.get(
        f"{gcs_url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}", params={"alt": "media"}
    ) as resp:
        assert resp.status == 200, name
        return await resp.read()
