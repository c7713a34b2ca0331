"""Cloud Storage reads: gcloud-aio-storage over one shared aiohttp session.

The planner lists (``list_page``); verification and failure resolution read objects
(``read_range`` for DICOM headers, ``download``, ``stat``). gcloud-aio-storage sends one request
per call and passes every query parameter through, but it does not retry. Each method adds
ours (``bulkmover.retry`` with ``CLOUD_STORAGE``): 408, 429, 5xx and connection errors are
retried with exponential backoff and full jitter, honouring ``Retry-After``; everything else
becomes an ``ApiError`` whose message says what to fix.

The endpoint is ``storage.endpoint`` from the config, else ``STORAGE_EMULATOR_HOST``, else the
real service (with Google credentials). Emulator endpoints get no token.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from gcloud.aio.storage import Storage

from bulkmover.errors import ApiError, ConfigError
from bulkmover.retry import (
    CLOUD_STORAGE,
    Decision,
    Outcome,
    RetryPolicy,
    Verdict,
    parse_retry_after,
    send_with_retries,
)

if TYPE_CHECKING:
    from bulkmover.config import Config

REAL_ENDPOINT = "https://storage.googleapis.com"
REQUEST_TIMEOUT = 120.0
T = TypeVar("T")


@dataclass
class RequestCounters:
    """What the client did, for the progress view and the summary."""

    requests: int = 0
    retries: int = 0


class StorageClient:
    """``async with StorageClient(...) as c: page = await c.list_page(bucket, params)``."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        concurrency: int = 128,
        policy: RetryPolicy | None = None,
        key_file: Path | None = None,
        anonymous: bool = False,
    ) -> None:
        self.endpoint = endpoint or os.environ.get("STORAGE_EMULATOR_HOST") or None
        if self.endpoint and not self.endpoint.startswith("http"):
            self.endpoint = "http://" + self.endpoint
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy(max_attempts=8, base_delay=0.25, max_delay=8.0)
        self.key_file = key_file
        self.anonymous = anonymous or self.endpoint is not None
        self.counters = RequestCounters()
        self._session: aiohttp.ClientSession | None = None
        self._storage: Storage | None = None

    @property
    def where(self) -> str:
        return self.endpoint or REAL_ENDPOINT

    async def __aenter__(self) -> StorageClient:
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        )
        try:
            self._storage = Storage(
                session=self._session,  # type: ignore[arg-type]
                api_root=self.endpoint,
                api_is_dev=self.anonymous,
                service_file=str(self.key_file) if self.key_file else None,
            )
        except BaseException:
            # gcloud-aio reads the key file here: never leave the session unclosed behind it.
            await self._session.close()
            self._session = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._storage = None

    async def list_page(self, bucket: str, params: dict[str, str]) -> dict[str, Any]:
        """One ``objects.list`` page, retried; ApiError when it cannot be had."""

        async def call(storage: Storage) -> dict[str, Any]:
            return await storage.list_objects(
                bucket, params=dict(params), timeout=int(REQUEST_TIMEOUT)
            )

        return await self._retrying(f"gs://{bucket}", "list", bucket, call)

    async def read_range(self, bucket: str, name: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object (a media download with an HTTP Range), retried.

        Fewer bytes come back when the object ends sooner; none when it ends before ``start``.
        A server that ignores Range sends the whole object: the asked part is cut from it.
        ApiError (status 404 when the object or bucket is missing) when it cannot be had.
        """
        if start < 0 or end <= start:
            raise ValueError(f"empty or negative byte range [{start}, {end})")
        uri = f"gs://{bucket}/{name}"

        async def call(storage: Storage) -> bytes:
            try:
                return await storage.download(
                    bucket,
                    name,
                    headers={"Range": f"bytes={start}-{end - 1}"},
                    timeout=int(REQUEST_TIMEOUT),
                )
            except aiohttp.ClientResponseError as err:
                if err.status == 416:  # the range starts at or past the end of the object
                    return b""
                raise

        data = await self._retrying(uri, "read", bucket, call)
        return data[start:end] if len(data) > end - start else data

    async def download(self, bucket: str, name: str) -> bytes:
        """The whole object (a media download), retried; ApiError (404 when missing)."""

        async def call(storage: Storage) -> bytes:
            return await storage.download(bucket, name, timeout=int(REQUEST_TIMEOUT))

        return await self._retrying(f"gs://{bucket}/{name}", "read", bucket, call)

    async def stat(self, bucket: str, name: str) -> ObjectStat | None:
        """Size and generation of an object (its metadata), or None when it does not exist."""

        async def call(storage: Storage) -> dict[str, Any]:
            return await storage.download_metadata(bucket, name, timeout=int(REQUEST_TIMEOUT))

        try:
            meta = await self._retrying(f"gs://{bucket}/{name}", "read", bucket, call)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        try:
            return ObjectStat(name, int(meta["size"]), int(meta["generation"]))
        except (KeyError, TypeError, ValueError):
            raise ApiError(
                f"the metadata of gs://{bucket}/{name} from {self.where} has no size or"
                " generation; check storage.endpoint",
                reason="BAD_RESPONSE",
            ) from None

    async def _retrying(
        self, uri: str, verb: str, bucket: str, call: Callable[[Storage], Awaitable[T]]
    ) -> T:
        """``call`` with our retries; ApiError saying what to fix when it cannot succeed."""
        storage = self._storage
        assert storage is not None, "use StorageClient as an async context manager"

        async def attempt(number: int) -> tuple[Outcome, T | BaseException]:
            self.counters.requests += 1
            return await _once(storage, uri, verb, call)

        last = await send_with_retries(attempt, self.policy, CLOUD_STORAGE, observe=self._count)
        answer = last.detail
        if last.outcome.ok:
            assert not isinstance(answer, BaseException)
            return answer
        assert isinstance(answer, BaseException)
        if last.decision.verdict is Verdict.EXHAUSTED:
            doing = "listing" if verb == "list" else "reading"
            then = "plan again" if verb == "list" else "run again"
            raise ApiError(
                f"{doing} {uri} at {self.where} failed {last.attempt} times (last:"
                f" {_failure(answer)[:200]}); check storage.endpoint and that the service is"
                f" reachable, then {then}",
                retriable=True,
            )
        assert isinstance(answer, aiohttp.ClientResponseError)  # a connection error is transient
        raise self._refusal(bucket, answer, uri, verb) from None

    def _count(self, attempt: int, outcome: Outcome, answer: object, decision: Decision) -> None:
        if decision.retrying:
            self.counters.retries += 1

    def _refusal(
        self, bucket: str, err: aiohttp.ClientResponseError, uri: str, verb: str
    ) -> ApiError:
        status, detail = err.status, _server_message(err)
        listing = verb == "list"
        if status == 404 and listing:
            message = (
                f"bucket gs://{bucket} not found at {self.where} (404); check the bucket in"
                " import.source (and storage.endpoint)"
            )
        elif status == 404:
            message = f"{uri} not found at {self.where} (404: {detail})"
        elif status == 403:
            message = (
                f"permission denied {'listing' if listing else 'reading'} {uri} (403: {detail});"
                " grant the account roles/storage.objectViewer on the bucket or use other"
                " credentials"
            )
        elif status == 401:
            message = (
                f"not authenticated to {verb} {uri} (401: {detail}); run `gcloud auth"
                " application-default login` or set credentials.key_file in the config"
            )
        else:
            message = f"Cloud Storage refused to {verb} {uri} ({status}: {detail})"
        return ApiError(message, status=status, reason=detail)


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """What ``stat`` tells of one object."""

    name: str
    size: int
    generation: int


async def _once(
    storage: Storage, uri: str, verb: str, call: Callable[[Storage], Awaitable[T]]
) -> tuple[Outcome, T | BaseException]:
    """One call: its answer, or the error with the outcome retries are decided on."""
    try:
        answer = await call(storage)
    except aiohttp.ClientResponseError as err:
        retry_after = parse_retry_after(err.headers.get("Retry-After") if err.headers else None)
        return Outcome(err.status, retry_after=retry_after), err
    except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as err:
        return Outcome(None, connected=not isinstance(err, aiohttp.ClientConnectorError)), err
    except Exception as err:  # credentials: gcloud-aio-auth raises assorted errors
        raise ApiError(
            f"could not {verb} {uri} ({type(err).__name__}: {_first_line(err)});"
            " check Google credentials (gcloud auth application-default login, or"
            " credentials.key_file in the config)"
        ) from None
    return Outcome(200), answer


def _failure(err: BaseException) -> str:
    if isinstance(err, aiohttp.ClientResponseError):
        return f"{err.status} {_server_message(err)}"
    return f"{type(err).__name__}: {err}".strip()


def _server_message(err: aiohttp.ClientResponseError) -> str:
    """The ``error.message`` of a JSON error body if there is one, else aiohttp's message."""
    text = err.message or ""
    _, _, body = text.partition(": ")
    try:
        data = json.loads(body)
        message = data["error"]["message"]
        if isinstance(message, str):
            return _first_line(message)[:200]
    except (ValueError, KeyError, TypeError):
        pass
    return _first_line(text)[:200]


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else ""


def storage_client(config: Config, concurrency: int) -> StorageClient:
    """A job's Cloud Storage client, as every command builds it: the config's endpoint, retry
    attempts and credentials (the planner's listing, the run's probes, ``verify``).

    A service-account key file is checked here, before any session is opened: gcloud-aio
    would raise a bare FileNotFoundError or KeyError from inside ``__aenter__``.
    """
    settings = config.storage
    key_file = None
    if config.credentials.kind == "service_account":
        from bulkmover.healthcare.auth import service_account_key  # google-auth: only if needed

        key_file = config.credentials.key_file
        if key_file is None:
            raise ConfigError("credentials: service_account needs key_file (path to a JSON key)")
        service_account_key(key_file)
    return StorageClient(
        endpoint=settings.endpoint,
        concurrency=concurrency,
        policy=RetryPolicy(max_attempts=settings.max_attempts, base_delay=0.25, max_delay=8.0),
        # The key only for kind service_account, as the Healthcare client does (adc: ADC).
        key_file=key_file,
        anonymous=config.credentials.kind == "anonymous",
    )
