"""Where generated files are written: a Cloud Storage bucket (JSON API) or a local directory.

Both sinks share one shape (``prepare`` once, ``put`` per file, used as an async context
manager), so the writer does not care which it feeds. Every failure leaves as a one-line
bulkmover error.

The GCS sink uploads through gcloud-aio-storage over one shared aiohttp session. The endpoint is
``--storage-endpoint``, else ``STORAGE_EMULATOR_HOST``, else real Cloud Storage (with
application default credentials). Transient answers (408, 429, 5xx, dropped connections) are
retried by ``bulkmover.retry`` (``CORPUS_UPLOADS``: backoff with full jitter, honouring
``Retry-After``); a refused connection is reported at once (no emulator running).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp

from bulkmover.corpus.destination import Destination, GcsDestination, LocalDestination
from bulkmover.errors import ApiError, BulkmoverError
from bulkmover.retry import (
    CORPUS_UPLOADS,
    Outcome,
    RetryPolicy,
    parse_retry_after,
    send_with_retries,
)

_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
# Six attempts within about ten seconds: a corpus is written by hand, a dead endpoint should not
# hold the prompt for minutes. A Retry-After is honoured up to 30 s.
_POLICY = RetryPolicy(max_attempts=6, base_delay=0.1, max_delay=5.0, max_retry_after=30.0)
_EMULATOR_PROJECT = "bulkmover-local"


class Sink(Protocol):
    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def prepare(self) -> None:
        """Make the destination ready (create the bucket or directory if missing)."""

    async def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (the full object name or relative path)."""


def resolve_endpoint(option: str | None) -> str | None:
    """The Cloud Storage emulator URL to use, or None for real Cloud Storage."""
    value = option or os.environ.get("STORAGE_EMULATOR_HOST")
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        value = f"http://{value}"
    return value.rstrip("/")


def open_sink(dest: Destination, endpoint: str | None, concurrency: int) -> Sink:
    if isinstance(dest, GcsDestination):
        return GcsSink(dest, resolve_endpoint(endpoint), concurrency)
    return LocalSink(dest)


class LocalSink:
    """Files under a local directory (blocking writes run in worker threads)."""

    def __init__(self, dest: LocalDestination) -> None:
        self.root = dest.root

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def prepare(self) -> None:
        await asyncio.to_thread(self._mkdir, self.root)

    async def put(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self.root / name, data)

    @staticmethod
    def _mkdir(path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BulkmoverError(
                f"cannot create directory {path}: {exc.strerror}; pick a writable destination"
            ) from None

    @classmethod
    def _write(cls, path: Path, data: bytes) -> None:
        cls._mkdir(path.parent)
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise BulkmoverError(
                f"cannot write {path}: {exc.strerror}; free space or pick another destination"
            ) from None


class GcsSink:
    """Objects in a Cloud Storage bucket, created if missing."""

    def __init__(self, dest: GcsDestination, endpoint: str | None, concurrency: int) -> None:
        self.dest = dest
        self.endpoint = endpoint
        self.api_root = endpoint or "https://storage.googleapis.com"
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._storage: Any = None

    async def __aenter__(self) -> Self:
        from gcloud.aio.storage import Storage

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=120, sock_connect=10),
        )
        session: Any = self._session  # gcloud-aio types it as its own Session alias
        try:
            if self.endpoint:
                self._storage = Storage(session=session, api_root=self.endpoint)
            else:
                self._storage = Storage(session=session)
        except (ValueError, OSError, KeyError) as exc:
            await self._session.close()
            raise ApiError(
                f"cannot load Google Cloud credentials ({exc}): fix "
                "GOOGLE_APPLICATION_CREDENTIALS or pass --storage-endpoint for the emulator"
            ) from None
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def where(self) -> str:
        return f"Cloud Storage at {self.api_root}"

    async def _headers(self) -> dict[str, str]:
        if self.endpoint:
            return {}
        try:
            token = await self._storage.token.get()
        except Exception as exc:  # gcloud-aio-auth raises many kinds
            raise ApiError(
                f"no usable Google Cloud credentials ({type(exc).__name__}): run "
                "`gcloud auth application-default login` or pass --storage-endpoint"
            ) from None
        return {"Authorization": f"Bearer {token}"}

    async def prepare(self) -> None:
        """Create the bucket unless it exists (a concurrent creator's 409 is fine)."""
        assert self._session is not None
        bucket_url = f"{self.api_root}/storage/v1/b/{self.dest.bucket}"
        status, body = await self._request("GET", bucket_url, what=f"bucket {self.dest.bucket}")
        if status == 200:
            return
        if status != 404:
            raise self._error(status, body, f"checking bucket gs://{self.dest.bucket}")
        project = await self._project()
        status, body = await self._request(
            "POST",
            f"{self.api_root}/storage/v1/b",
            what=f"bucket {self.dest.bucket}",
            params={"project": project},
            json_body={"name": self.dest.bucket},
        )
        if status not in (200, 409):
            raise self._error(status, body, f"creating bucket gs://{self.dest.bucket}")

    async def _project(self) -> str:
        if self.endpoint:
            return _EMULATOR_PROJECT
        project: str | None = None
        try:
            project = await self._storage.token.get_project()
        except Exception:  # no metadata server, no credentials file: ask the user
            project = None
        if not project:
            raise ApiError(
                f"bucket gs://{self.dest.bucket} does not exist and no project is known to "
                "create it in: set GOOGLE_CLOUD_PROJECT or create the bucket first"
            )
        return project

    async def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        json_body: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """One JSON API call with retries; returns the final status and body."""
        session = self._session
        assert session is not None

        async def attempt(number: int) -> tuple[Outcome, str | BaseException]:
            headers = await self._headers()
            try:
                async with session.request(
                    method, url, params=params, json=json_body, headers=headers
                ) as resp:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    return Outcome(resp.status, retry_after=retry_after), await resp.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _no_answer(exc), exc

        last = await send_with_retries(attempt, _POLICY, CORPUS_UPLOADS)
        if isinstance(last.detail, BaseException):
            raise self._no_answer_error(last.detail, what) from None
        assert last.outcome.status is not None
        return last.outcome.status, last.detail

    async def put(self, name: str, data: bytes) -> None:
        async def attempt(number: int) -> tuple[Outcome, BaseException | None]:
            try:
                await self._storage.upload(
                    self.dest.bucket,
                    name,
                    data,
                    content_type="application/dicom",
                    force_resumable_upload=False,
                    timeout=120,
                )
            except aiohttp.ClientResponseError as exc:
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                return Outcome(exc.status, retry_after=parse_retry_after(retry_after)), exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _no_answer(exc), exc
            return Outcome(200), None

        last = await send_with_retries(attempt, _POLICY, CORPUS_UPLOADS)
        failure = last.detail
        if isinstance(failure, aiohttp.ClientResponseError):
            raise self._error(
                failure.status, failure.message, f"uploading gs://{self.dest.bucket}/{name}"
            ) from None
        if failure is not None:
            raise self._no_answer_error(failure, f"gs://{self.dest.bucket}/{name}") from None

    def _no_answer_error(self, exc: BaseException, what: str) -> ApiError:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self._unreachable(exc)
        return self._failed(exc, what)

    def _unreachable(self, exc: aiohttp.ClientConnectorError) -> ApiError:
        os_error = exc.os_error
        reason = (os_error.strerror or str(os_error)) if os_error else str(exc)
        return ApiError(
            f"cannot reach {self.where} ({reason}): start the local cloud "
            "(bulkmover emulator) or fix --storage-endpoint / STORAGE_EMULATOR_HOST",
            retriable=True,
        )

    def _failed(self, exc: BaseException, what: str) -> ApiError:
        detail = str(exc) or type(exc).__name__
        return ApiError(
            f"{self.where} kept failing for {what} ({detail}): check the endpoint and retry",
            retriable=True,
        )

    def _error(self, status: int, body: str, doing: str) -> ApiError:
        message = _error_message(body)
        if status in (401, 403):
            fix = (
                "grant the caller roles/storage.admin on the bucket (or pick another bucket)"
                if status == 403
                else "refresh credentials (gcloud auth application-default login)"
            )
            return ApiError(
                f"permission denied ({status}) {doing}: {message}; {fix}",
                status=status,
                reason="forbidden" if status == 403 else "unauthorized",
            )
        return ApiError(
            f"{self.where} answered {status} {doing}: {message}",
            status=status,
            retriable=status in CORPUS_UPLOADS.statuses,
        )


def _error_message(text: str) -> str:
    """The ``error.message`` of a GCS JSON error body found in ``text``, else ``text``."""
    message = text
    start = text.find("{")
    if start >= 0:
        try:
            message = str(json.loads(text[start:])["error"]["message"])
        except (ValueError, KeyError, TypeError):
            pass
    return " ".join(message.split())[:300] or "no details"


def _no_answer(exc: BaseException) -> Outcome:
    """No HTTP answer: a refused connection never reached the server, anything else may have."""
    return Outcome(None, connected=not isinstance(exc, aiohttp.ClientConnectorError))
