"""``HealthcareClient``: the Healthcare API (DICOM import/export, operations) and Logging over REST.

One shared aiohttp session; credentials from ``bulkmover.healthcare.auth``; every request goes
through ``bulkmover.retry`` (backoff with full jitter on 429/500/502/503/504 and connection
errors, honouring ``Retry-After``); other 4xx raise at once. Failures become one-line
``ApiError``s.

Starting an operation is not idempotent, so import/export POSTs are re-sent only when the failure
proves no operation started (no connection was made, or an answer in
``RetryPolicy.not_started_statuses``: 429 and 503 by default). After a connection lost or a
timeout once the request was sent, or another 5xx answer, the client raises
``OutcomeUnknownError`` (retriable, with ``sent_at``): the caller looks for the operation before
it resubmits (the executor's ``execution.resolver``; ``operations_started_since`` for one start),
so no shard is imported by two operations.

The executor sees every attempt: ``before_request(family)`` is awaited before each one (plug a rate
limiter in), every callable in ``listeners`` gets its ``RequestEvent`` after each, and ``stats``
counts them per family.

    async with HealthcareClient(endpoint=url, credentials=anonymous()) as client:
        ref = await client.import_dicom(store, "gs://bucket/study-1/**.dcm")
        op = await wait_for_operation(client, ref.name)
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import structlog
from pydantic import ValidationError

from bulkmover import __version__
from bulkmover.errors import ApiError, ConfigError, UsageError
from bulkmover.healthcare import calls
from bulkmover.healthcare.auth import AnonymousCredentials, Credentials
from bulkmover.healthcare.dicomweb import (
    DICOM_JSON,
    STOW_FILE_FAILURES,
    StoreMetrics,
    StowAnswer,
    multipart_body,
    refused_answer,
    stow_answer,
)
from bulkmover.healthcare.errorinfo import QuotaInfo, quota_info
from bulkmover.healthcare.failures import (
    Call,
    OutcomeUnknownError,
    ServerError,
    connection_error,
    error_from_response,
)
from bulkmover.healthcare.logging import MAX_PAGE_SIZE, LogEntriesPage
from bulkmover.healthcare.operations import (
    Operation,
    OperationRef,
    OperationsPage,
    wait_for_operation,
)
from bulkmover.healthcare.paging import iter_pages
from bulkmover.healthcare.resources import DatasetInfo, DatasetPath, DicomStoreInfo, StorePath
from bulkmover.healthcare.stats import ClientStats, Family, RequestEvent
from bulkmover.retry import (
    HEALTHCARE,
    Decision,
    Last,
    Outcome,
    RetryPolicy,
    Verdict,
    parse_retry_after,
    send_with_retries,
)

DEFAULT_ENDPOINT = "https://healthcare.googleapis.com"
DEFAULT_LOGGING_ENDPOINT = "https://logging.googleapis.com"
API_VERSIONS = ("v1", "v1beta1")
BLOB_STORAGE_CLASSES = ("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE")
USER_AGENT = f"bulkmover/{__version__}"
QIDO_PAGE_SIZE = 5000
"""Results per QIDO-RS page (the API allows 5,000 studies or series, 50,000 instances)."""

# No connection was made: the request certainly did not reach the server. (aiohttp < 3.10 has no
# ConnectionTimeoutError: a connect timeout there counts as "maybe sent", the safe side.)
_NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError,) + tuple(
    getattr(aiohttp, name) for name in ("ConnectionTimeoutError",) if hasattr(aiohttp, name)
)

log = structlog.get_logger("bulkmover.healthcare")
T = TypeVar("T")


def _check_endpoint(url: str, what: str) -> str:
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
        raise ConfigError(
            f"{what} {url!r} is not a base URL; use e.g. https://healthcare.googleapis.com or"
            " http://127.0.0.1:PORT for the emulator"
        )
    return url


def _parse(call: Call, build: Callable[[], T]) -> T:
    """Build a typed answer; a shape the models do not accept becomes a one-line ApiError."""
    try:
        return build()
    except (ValidationError, TypeError, AttributeError) as err:
        detail = err.errors()[0] if isinstance(err, ValidationError) and err.errors() else None
        where = ".".join(str(p) for p in detail["loc"]) if detail else type(err).__name__
        raise ApiError(
            f"{call.what}: unexpected answer from the server ({where} is missing or malformed);"
            " check that the endpoint is the Healthcare API (or the emulator)",
            reason="BAD_RESPONSE",
        ) from None


def _count_param(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or (name == "limit" and int(raw) == 0):
        raise UsageError(f"QIDO {name} {raw!r} is not a valid count; give a positive integer")
    return int(raw)


@dataclass(slots=True)
class _Reply:
    """One attempt's details beyond its ``Outcome``: the body, or the error that replaced it."""

    payload: bytes
    failure: BaseException | None
    sent_at: datetime
    elapsed: float
    headers: Mapping[str, str] = field(default_factory=dict)

    def message(self) -> str:
        if self.failure is not None:
            return type(self.failure).__name__
        return ServerError.parse(self.payload).message


@dataclass(slots=True)
class _Reauth:
    done: bool = False  # one 401 per call may be retried with fresh credentials


async def _exchange(
    request: AbstractAsyncContextManager[aiohttp.ClientResponse],
) -> tuple[Outcome, _Reply]:
    """One attempt on the wire: the answer, or the connection error and whether it was sent."""
    sent_at = datetime.now(UTC)
    started = time.monotonic()
    failure: BaseException | None = None
    payload = b""
    headers: Mapping[str, str] = {}
    try:
        async with request as response:
            payload = await response.read()
            headers = response.headers
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            outcome = Outcome(response.status, retry_after=retry_after)
    except _NOT_SENT_ERRORS as err:
        failure, outcome = err, Outcome(None, connected=False)
    except (aiohttp.ClientError, TimeoutError) as err:
        failure, outcome = err, Outcome(None)
    return outcome, _Reply(payload, failure, sent_at, time.monotonic() - started, headers)


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class HealthcareClient:
    """Async client for the Healthcare API v1/v1beta1 and Logging v2; use ``async with``.

    ``logging_endpoint`` defaults to Google's Logging API for Google's Healthcare endpoint, and to
    ``endpoint`` itself otherwise (the emulator serves both on one port).
    """

    def __init__(
        self,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        logging_endpoint: str | None = None,
        api_version: Literal["v1", "v1beta1"] | str = "v1",
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float = 60.0,
        max_connections: int = 64,
        before_request: Callable[[Family], Awaitable[None]] | None = None,
    ) -> None:
        if api_version not in API_VERSIONS:
            raise ConfigError(f"api_version {api_version!r} is not supported; use v1 or v1beta1")
        self.endpoint = _check_endpoint(endpoint, "endpoint")
        if logging_endpoint is None:
            logging_endpoint = (
                DEFAULT_LOGGING_ENDPOINT if self.endpoint == DEFAULT_ENDPOINT else self.endpoint
            )
        self.logging_endpoint = _check_endpoint(logging_endpoint, "logging_endpoint")
        self.api_version = api_version
        self.credentials: Credentials = credentials or AnonymousCredentials()
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, connect=connect_timeout)
        self._max_connections = max_connections
        self._before_request = before_request
        self.listeners: list[Callable[[RequestEvent], None]] = []
        """Called with each attempt's ``RequestEvent``, in order, after ``stats`` counted it."""
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return (
            f"HealthcareClient(endpoint={self.endpoint!r}, api_version={self.api_version!r},"
            f" credentials={self.credentials!r})"
        )

    async def __aenter__(self) -> HealthcareClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                raise_for_status=False,
            )
        return self._session

    def _url(self, name: str, verb: str = "") -> str:
        return f"{self.endpoint}/{self.api_version}/{name}{verb}"

    # -- import / export -----------------------------------------------------------------------

    async def import_dicom(
        self, store: StorePath, uri: str, blob_storage_class: str | None = None
    ) -> OperationRef:
        """Start ``dicomStores.import`` of ``uri`` (a gs:// wildcard); record the name at once."""
        body: dict[str, Any] = {"gcsSource": {"uri": uri}}
        if blob_storage_class is not None:
            if blob_storage_class not in BLOB_STORAGE_CLASSES:
                raise ConfigError(
                    f"blob storage class {blob_storage_class!r} is not one of"
                    f" {', '.join(BLOB_STORAGE_CLASSES)}"
                )
            body["blobStorageSettings"] = {"blobStorageClass": blob_storage_class}
        call = calls.IMPORT.on(store.name, f"import {uri} into {store}")
        return self._operation_ref(
            call, await self._send(call, "POST", self._url(store.name, ":import"), body=body)
        )

    async def export_dicom(
        self,
        store: StorePath,
        uri_prefix: str,
        mime_type: str | None = None,
        filter_uri: str | None = None,
    ) -> OperationRef:
        """Start ``dicomStores.export`` to ``uri_prefix``; ``filter_uri`` names a filter file."""
        destination: dict[str, Any] = {"uriPrefix": uri_prefix}
        if mime_type:
            destination["mimeType"] = mime_type
        body: dict[str, Any] = {"gcsDestination": destination}
        if filter_uri:
            body["filterConfig"] = {"resourcePathsGcsUri": filter_uri}
        call = calls.EXPORT.on(store.name, f"export {store} to {uri_prefix}")
        return self._operation_ref(
            call, await self._send(call, "POST", self._url(store.name, ":export"), body=body)
        )

    @staticmethod
    def _operation_ref(call: Call, body: dict[str, Any]) -> OperationRef:
        name = body.get("name")
        if not isinstance(name, str) or "/operations/" not in name:
            raise ApiError(
                f"{call.what}: the answer names no operation; check that the endpoint is the"
                " Healthcare API",
                reason="BAD_RESPONSE",
            )
        return OperationRef(name)

    # -- operations ----------------------------------------------------------------------------

    async def get_operation(self, name: str) -> Operation:
        call = calls.GET_OPERATION.on(name, f"get operation {name}")
        body = await self._send(call, "GET", self._url(name))
        return _parse(call, lambda: Operation.model_validate(body))

    async def list_operations(
        self,
        dataset: DatasetPath,
        filter: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> OperationsPage:
        """One page of the dataset's operations: ``ops, next_token = await ...``."""
        params: dict[str, str] = {"pageSize": str(page_size)}
        if filter:
            params["filter"] = filter
        if page_token:
            params["pageToken"] = page_token
        call = calls.LIST_OPERATIONS.on(dataset.name, f"list operations of {dataset}")
        body = await self._send(call, "GET", self._url(dataset.name, "/operations"), params=params)
        return _parse(call, lambda: OperationsPage.from_json(body))

    async def iter_operation_pages(
        self, dataset: DatasetPath, filter: str | None = None, page_size: int = 100
    ) -> AsyncIterator[OperationsPage]:
        """Every page of ``list_operations``, one call each, until no next token."""
        async for page in iter_pages(
            lambda token: self.list_operations(dataset, filter, page_size, token)
        ):
            yield page

    async def cancel_operation(self, name: str) -> None:
        """Ask the server to cancel; the operation then ends with a CANCELLED error."""
        call = calls.CANCEL_OPERATION.on(name, f"cancel operation {name}")
        await self._send(call, "POST", self._url(name, ":cancel"), body={})

    # -- logging -------------------------------------------------------------------------------

    async def list_log_entries(
        self,
        resource_names: Sequence[str],
        filter: str,
        page_size: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
        order_by: str | None = None,
    ) -> LogEntriesPage:
        """One page of Logging ``entries:list`` (read-only, so retried like a GET)."""
        body: dict[str, Any] = {
            "resourceNames": list(resource_names),
            "filter": filter,
            "pageSize": page_size,
        }
        if page_token:
            body["pageToken"] = page_token
        if order_by:
            body["orderBy"] = order_by
        names = ", ".join(resource_names)
        call = calls.LIST_LOG_ENTRIES.on(names, f"read error logs of {names}")
        url = f"{self.logging_endpoint}/v2/entries:list"
        answer = await self._send(call, "POST", url, body=body)
        return _parse(call, lambda: LogEntriesPage.from_json(answer))

    async def iter_log_entry_pages(
        self,
        resource_names: Sequence[str],
        filter: str,
        page_size: int = MAX_PAGE_SIZE,
        order_by: str | None = None,
    ) -> AsyncIterator[LogEntriesPage]:
        async for page in iter_pages(
            lambda token: self.list_log_entries(resource_names, filter, page_size, token, order_by)
        ):
            yield page

    # -- datasets and stores (demo, preflight) -------------------------------------------------

    async def get_dataset(self, dataset: DatasetPath) -> DatasetInfo:
        call = calls.GET_DATASET.on(dataset.name, f"get dataset {dataset}")
        body = await self._send(call, "GET", self._url(dataset.name))
        return _parse(call, lambda: DatasetInfo.model_validate(body))

    async def create_dataset(self, dataset: DatasetPath, *, max_wait: float = 120.0) -> DatasetInfo:
        """Create the dataset and wait until it exists (the API answers with an operation)."""
        call = calls.CREATE_DATASET.on(dataset.name, f"create dataset {dataset}")
        parent = f"projects/{dataset.project}/locations/{dataset.location}"
        url = self._url(parent, "/datasets")
        body = await self._send(call, "POST", url, params={"datasetId": dataset.dataset}, body={})
        name = body.get("name")
        if isinstance(name, str) and "/operations/" in name:
            op = await wait_for_operation(self, name, max_wait=max_wait)
            if op.error is not None:
                raise ApiError(f"create dataset {dataset}: failed: {op.error}", reason="FAILED")
        return await self.get_dataset(dataset)

    async def get_dicom_store(self, store: StorePath) -> DicomStoreInfo:
        call = calls.GET_DICOM_STORE.on(store.name, f"get DICOM store {store}")
        body = await self._send(call, "GET", self._url(store.name))
        return _parse(call, lambda: DicomStoreInfo.model_validate(body))

    async def create_dicom_store(self, store: StorePath) -> DicomStoreInfo:
        call = calls.CREATE_DICOM_STORE.on(store.name, f"create DICOM store {store}")
        url = self._url(store.dataset.name, "/dicomStores")
        body = await self._send(call, "POST", url, params={"dicomStoreId": store.store}, body={})
        return _parse(call, lambda: DicomStoreInfo.model_validate(body))

    async def ensure_dicom_store(self, store: StorePath) -> bool:
        """Create the dataset and the store when missing; True if anything was created."""
        created = False
        try:
            await self.get_dataset(store.dataset)
        except ApiError as err:
            if err.status != 404:
                raise
            created = True
            await self._create_tolerating_conflict(self.create_dataset(store.dataset))
        try:
            await self.get_dicom_store(store)
        except ApiError as err:
            if err.status != 404:
                raise
            created = True
            await self._create_tolerating_conflict(self.create_dicom_store(store))
        return created

    @staticmethod
    async def _create_tolerating_conflict(create: Awaitable[object]) -> None:
        try:
            await create
        except ApiError as err:
            if err.status != 409:  # created meanwhile by someone else: fine
                raise

    # -- store metrics and DICOMweb (verification, failure resolution) -------------------------

    async def get_dicom_store_metrics(self, store: StorePath) -> StoreMetrics:
        """Instance, series and study counts and sizes of the store (``getDICOMStoreMetrics``)."""
        call = calls.GET_DICOM_STORE_METRICS.on(store.name, f"get metrics of DICOM store {store}")
        body = await self._send(call, "GET", self._url(store.name, ":getDICOMStoreMetrics"))
        return _parse(call, lambda: StoreMetrics.model_validate(body))

    async def search_instances(
        self,
        store: StorePath,
        study_uid: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        page_size: int = QIDO_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """QIDO-RS instance search (of one study, or of the store), every page: DICOM JSON.

        Pages by ``limit``/``offset`` until a page is short and the server gives no "additional
        results" warning (a server may cap ``limit`` below what was asked). A ``limit`` or
        ``offset`` in ``params`` sets the page size and the start. A study that is not in the
        store gives ``[]``, whether the server answers 200 with nothing, 204 or 404.
        """
        path = f"studies/{quote(study_uid, safe='')}/instances" if study_uid else "instances"
        what = f"search instances of study {study_uid} in {store}" if study_uid else None
        call = calls.SEARCH_INSTANCES.on(store.name, what or f"search instances in {store}")
        url = self._url(store.name, f"/dicomWeb/{path}")
        query = dict(params or {})
        limit = _count_param(query.pop("limit", None), page_size, "limit")
        offset = _count_param(query.pop("offset", None), 0, "offset")
        results: list[dict[str, Any]] = []
        first: dict[str, Any] | None = None
        while True:
            page_query = {**query, "limit": str(limit), "offset": str(offset)}
            last = await self._send_raw(
                call, "GET", url, params=page_query, headers={"Accept": DICOM_JSON}
            )
            if not last.outcome.ok:
                if last.outcome.status == 404 and study_uid is not None:
                    await self.get_dicom_store(store)  # raises if the store itself is missing
                    return results
                raise self._failure(call, url, last) from last.detail.failure
            page = self._json_list(call, last.detail.payload, url)
            if not page:
                return results
            if page[0] == first:
                raise ApiError(
                    f"{call.what}: the server answered the same page for offset {offset};"
                    " it does not page by offset",
                    reason="BAD_RESPONSE",
                )
            first = page[0]
            results.extend(page)
            warning = last.detail.headers.get("Warning", "")
            if len(page) < limit and "additional results" not in warning.lower():
                return results
            offset += len(page)

    async def store_instance(self, store: StorePath, data: bytes) -> StowAnswer:
        """STOW-RS one DICOM file (Part 10 bytes) into the store; what became of it.

        Per-file outcomes are answers, not errors: stored, duplicate (already in the store) and
        failed, including a whole request refused for what it carried (400 not DICOM, 409, 413,
        415, 422: ``STOW_FILE_FAILURES``). 429/5xx and connection errors are retried (storing
        is idempotent: a repeat finds the duplicate) and raise ``ApiError`` when exhausted;
        401/403/404 raise at once (they are about the caller or the store, not the file).
        """
        body, content_type = multipart_body(data)
        call = calls.STORE_INSTANCES.on(store.name, f"store an instance in {store} (STOW-RS)")
        url = self._url(store.name, "/dicomWeb/studies")
        headers = {"Content-Type": content_type, "Accept": DICOM_JSON}
        last = await self._send_raw(call, "POST", url, data=body, headers=headers)
        status = last.outcome.status
        if status is None or not (last.outcome.ok or status in STOW_FILE_FAILURES):
            raise self._failure(call, url, last) from last.detail.failure
        payload = last.detail.payload
        try:
            parsed = json.loads(payload) if payload.strip() else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        answer = stow_answer(parsed, last.attempt) if isinstance(parsed, dict) else None
        if answer is not None:
            return answer
        if last.outcome.ok:
            raise ApiError(
                f"{call.what}: the server answered {status} but named no stored instance;"
                " check that the endpoint is the Healthcare API (or the emulator)",
                reason="BAD_RESPONSE",
            )
        return refused_answer(status, ServerError.parse(payload).message, last.attempt)

    # -- the one place requests are sent -------------------------------------------------------

    async def _send(
        self,
        call: Call,
        http_method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send with retries; return the JSON object of the 2xx answer or raise ApiError."""
        last = await self._send_raw(call, http_method, url, params=params, body=body)
        if last.outcome.ok:
            return self._json(call, last.detail.payload, url)
        raise self._failure(call, url, last) from last.detail.failure

    async def _send_raw(
        self,
        call: Call,
        http_method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Last[_Reply]:
        """The one retrying send: ``body`` goes as JSON, ``data`` as raw bytes with ``headers``
        (DICOMweb). Returns the attempt the retries stopped at, for the caller to judge."""
        session = self._ensure_session()
        reauth = _Reauth()

        async def attempt(number: int) -> tuple[Outcome, _Reply]:
            if self._before_request is not None:
                await self._before_request(call.family)
            sent = {**(headers or {}), **await self.credentials.headers()}
            request = session.request(
                http_method, url, params=params, json=body, data=data, headers=sent
            )
            return self._reauthenticating(await _exchange(request), reauth)

        return await send_with_retries(
            attempt,
            self.retry,
            HEALTHCARE,
            starts_operation=call.starts_operation,
            observe=partial(self._observe, call),
        )

    def _reauthenticating(
        self, answer: tuple[Outcome, _Reply], reauth: _Reauth
    ) -> tuple[Outcome, _Reply]:
        """A 401 for real credentials: drop the token and allow one more try (a token revoked
        or expired early); anonymous callers get the 401 as it is."""
        outcome, reply = answer
        if outcome.status != 401 or reauth.done or self.credentials.anonymous:
            return answer
        reauth.done = True
        self.credentials.invalidate()
        return replace(outcome, auth_retry=True), reply

    def _observe(
        self, call: Call, attempt: int, outcome: Outcome, reply: _Reply, decision: Decision
    ) -> None:
        message = None if outcome.ok else reply.message()
        quota = quota_info(reply.payload) if outcome.status == 429 else None
        self._record(
            call, outcome.status, attempt, decision.retrying, reply.elapsed, message, quota
        )
        if decision.retrying:
            log.info(
                "healthcare.retry",
                method=call.method,
                status=outcome.status,
                error=type(reply.failure).__name__ if reply.failure else None,
                attempt=attempt,
                delay=round(decision.delay, 3),
            )

    def _failure(self, call: Call, url: str, last: Last[_Reply]) -> ApiError:
        """The error for the attempt the retries stopped at (``OutcomeUnknownError`` for a start
        that may have begun)."""
        reply, status, endpoint = last.detail, last.outcome.status, _endpoint(url)
        if reply.failure is not None:
            error = connection_error(
                call, endpoint, reply.failure, sent=last.outcome.connected, attempts=last.attempt
            )
        else:
            assert status is not None
            error = error_from_response(
                call,
                status,
                reply.payload,
                retry_after=last.outcome.retry_after,
                anonymous=self.credentials.anonymous,
                attempts=last.attempt,
            )
        if last.decision.verdict is not Verdict.OUTCOME_UNKNOWN:
            return error
        self.stats[call.family].outcome_unknown += 1
        return OutcomeUnknownError(
            f"{error}; the operation may have started: look for it with"
            " operations.list before resubmitting",
            call=call,
            sent_at=reply.sent_at,
            status=status,
        )

    def _record(
        self,
        call: Call,
        status: int | None,
        attempt: int,
        retrying: bool,
        elapsed: float,
        message: str | None = None,
        quota: QuotaInfo | None = None,
    ) -> None:
        event = RequestEvent(
            call.family, call.method, status, attempt, retrying, elapsed, message, quota
        )
        self.stats.record(event)
        for listener in self.listeners:
            listener(event)

    @staticmethod
    def _json_list(call: Call, payload: bytes, url: str) -> list[dict[str, Any]]:
        """A DICOM JSON array (QIDO results); an empty body (204) is no results."""
        if not payload.strip():
            return []
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ApiError(
                f"{call.what}: {_endpoint(url)} answered with something other than a DICOM JSON"
                " array; check that the endpoint is the Healthcare API (or the emulator)",
                reason="BAD_RESPONSE",
            )
        return data

    @staticmethod
    def _json(call: Call, payload: bytes, url: str) -> dict[str, Any]:
        if not payload.strip():
            return {}
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise ApiError(
                f"{call.what}: {_endpoint(url)} answered with something other than a JSON object;"
                " check that the endpoint is the Healthcare API (or the emulator)",
                reason="BAD_RESPONSE",
            )
        return data
