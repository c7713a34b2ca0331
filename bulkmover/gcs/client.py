"""Cloud Storage reads: gcloud-aio-storage over one shared aiohttp session.

The planner lists (``list_page``); verification and failure resolution read objects
(``read_range`` for DICOM headers, ``download``, ``stat``). gcloud-aio-storage sends one request
per call and passes every query parameter through, but it does not retry. Each method adds
ours (``bulkmover.retry`` with ``CLOUD_STORAGE``): 408, 429, 5xx and connection errors are
retried with exponential backoff and full jitter, honouring ``Retry-After``; everything else
becomes an ``ApiError`` whose message says what to fix.

The endpoint is ``storage.endpoint`` from the config, else ``STORAGE_EMULATOR_HOST``, else the
real service. Credentials are the job's one credential (``bulkmover.healthcare.auth``): the same
token, and the same ``x-goog-user-project``, as the Healthcare client's. We send those headers
ourselves on every call, so gcloud-aio never looks for credentials of its own; only
``credentials.kind: anonymous`` sends none (an endpoint alone does not: a proxy or a private
endpoint still wants a token).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
from gcloud.aio.auth import Token
from gcloud.aio.storage import Storage

from bulkmover.errors import ApiError
from bulkmover.healthcare.failures import asks_for_quota_project, quota_project_fix
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
    from bulkmover.healthcare.auth import Credentials

REAL_ENDPOINT = "https://storage.googleapis.com"
REQUEST_TIMEOUT = 120.0
T = TypeVar("T")


@dataclass
class RequestCounters:
    """What the client did, for the progress view and the summary."""

    requests: int = 0
    retries: int = 0


class _NoToken:
    """Stands in for gcloud-aio's ``Token``, which would look for credentials of its own (and
    read GOOGLE_APPLICATION_CREDENTIALS) when built: ours go in each call's headers."""

    async def get(self) -> str | None:
        return None

    async def close(self) -> None:
        pass


class StorageClient:
    """``async with StorageClient(...) as c: page = await c.list_page(bucket, params)``.

    ``credentials`` (default: none) or ``credentials_from`` (awaited on entry, e.g. the job's
    shared credential) give every request its ``Authorization`` and ``x-goog-user-project``.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        concurrency: int = 128,
        policy: RetryPolicy | None = None,
        credentials: Credentials | None = None,
        credentials_from: Callable[[], Awaitable[Credentials]] | None = None,
    ) -> None:
        self.endpoint = endpoint or os.environ.get("STORAGE_EMULATOR_HOST") or None
        if self.endpoint and not self.endpoint.startswith("http"):
            self.endpoint = "http://" + self.endpoint
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy(max_attempts=8, base_delay=0.25, max_delay=8.0)
        self.credentials = credentials
        self._credentials_from = credentials_from
        self.counters = RequestCounters()
        self._session: aiohttp.ClientSession | None = None
        self._storage: Storage | None = None

    @property
    def anonymous(self) -> bool:
        return self.credentials is None or self.credentials.anonymous

    @property
    def where(self) -> str:
        return self.endpoint or REAL_ENDPOINT

    async def __aenter__(self) -> StorageClient:
        if self.credentials is None and self._credentials_from is not None:
            # Before any session opens: a bad key file is a ConfigError with nothing to close.
            self.credentials = await self._credentials_from()
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        )
        # api_is_dev only stops gcloud-aio adding headers: TLS is checked by our session.
        self._storage = Storage(
            session=self._session,  # type: ignore[arg-type]
            api_root=self.endpoint or REAL_ENDPOINT,
            api_is_dev=True,
            token=cast(Token, _NoToken()),
        )
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

        async def call(storage: Storage, headers: dict[str, str]) -> dict[str, Any]:
            return await storage.list_objects(
                bucket, params=dict(params), headers=headers, timeout=int(REQUEST_TIMEOUT)
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

        async def call(storage: Storage, headers: dict[str, str]) -> bytes:
            try:
                return await storage.download(
                    bucket,
                    name,
                    headers={**headers, "Range": f"bytes={start}-{end - 1}"},
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

        async def call(storage: Storage, headers: dict[str, str]) -> bytes:
            return await storage.download(
                bucket, name, headers=headers, timeout=int(REQUEST_TIMEOUT)
            )

        return await self._retrying(f"gs://{bucket}/{name}", "read", bucket, call)

    async def stat(self, bucket: str, name: str) -> ObjectStat | None:
        """Size and generation of an object (its metadata), or None when it does not exist."""

        async def call(storage: Storage, headers: dict[str, str]) -> dict[str, Any]:
            return await storage.download_metadata(
                bucket, name, headers=headers, timeout=int(REQUEST_TIMEOUT)
            )

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
        self,
        uri: str,
        verb: str,
        bucket: str,
        call: Callable[[Storage, dict[str, str]], Awaitable[T]],
    ) -> T:
        """``call`` with our retries; ApiError saying what to fix when it cannot succeed."""
        storage = self._storage
        assert storage is not None, "use StorageClient as an async context manager"
        credentials = self.credentials
        reauthenticated = False

        async def attempt(number: int) -> tuple[Outcome, T | BaseException]:
            nonlocal reauthenticated
            self.counters.requests += 1
            headers = await credentials.headers() if credentials is not None else {}
            outcome, answer = await _once(storage, uri, verb, call, headers)
            if outcome.status == 401 and credentials is not None and not credentials.anonymous:
                if not reauthenticated:  # a token revoked or expired early: one fresh try
                    reauthenticated = True
                    credentials.invalidate()
                    outcome = replace(outcome, auth_retry=True)
            return outcome, answer

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
        elif status == 403 and asks_for_quota_project(detail):
            message = (
                f"no usable quota project to {verb} {uri} (403: {detail}); {quota_project_fix()}"
            )
        elif status == 403:
            message = (
                f"permission denied {'listing' if listing else 'reading'} {uri} (403: {detail});"
                " grant the account roles/storage.objectViewer on the bucket or use other"
                " credentials"
            )
        elif status == 401:
            message = f"not authenticated to {verb} {uri} (401: {detail}); " + (
                "the endpoint requires credentials: set credentials to adc or"
                " service_account in the config"
                if self.anonymous
                else "run `gcloud auth application-default login` or check"
                " credentials.key_file in the config"
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
    storage: Storage,
    uri: str,
    verb: str,
    call: Callable[[Storage, dict[str, str]], Awaitable[T]],
    headers: dict[str, str],
) -> tuple[Outcome, T | BaseException]:
    """One call: its answer, or the error with the outcome retries are decided on."""
    try:
        answer = await call(storage, dict(headers))
    except aiohttp.ClientResponseError as err:
        retry_after = parse_retry_after(err.headers.get("Retry-After") if err.headers else None)
        return Outcome(err.status, retry_after=retry_after), err
    except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as err:
        return Outcome(None, connected=not isinstance(err, aiohttp.ClientConnectorError)), err
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


def storage_client(
    config: Config, concurrency: int, credentials: Credentials | None = None
) -> StorageClient:
    """A job's Cloud Storage client, as every command builds it: the config's endpoint, retry
    attempts and the job's one credential (``credentials``, else the one
    ``credentials_for(config.credentials)`` shares on this event loop with the Healthcare
    client), for the planner's listing, the run's per-file stage and ``verify``.

    The credential is loaded on entry, before any session opens: a bad key file is one
    ConfigError with nothing left unclosed.
    """
    settings = config.storage

    async def shared() -> Credentials:
        from bulkmover.healthcare.auth import credentials_for  # google-auth: only when entered

        return await credentials_for(config.credentials)

    return StorageClient(
        endpoint=settings.endpoint,
        concurrency=concurrency,
        policy=RetryPolicy(max_attempts=settings.max_attempts, base_delay=0.25, max_delay=8.0),
        credentials=credentials,
        credentials_from=None if credentials is not None else shared,
    )
