"""Turn HTTP failures into one-line ApiErrors that say what failed and how to fix it.

Each request is described by a ``Call`` (what it does, on which resource, which permission it
needs), so a 403 can name the permission and role, a 404 the missing dataset or store, and a
refused connection the endpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from bulkmover.errors import ApiError, one_line
from bulkmover.healthcare.errorinfo import error_infos
from bulkmover.healthcare.stats import Family
from bulkmover.retry import HEALTHCARE

DEFAULT_NOT_FOUND_HINT = "check the project, location, dataset and store names in the config"
QUOTA_PROJECT_HINT = (
    "set credentials.quota_project: PROJECT in the config (or `gcloud auth application-default"
    " set-quota-project PROJECT`)"
)


@dataclass(frozen=True)
class Call:
    """One API method applied to one resource, described for messages and retry decisions.

    ``starts_operation`` marks import/export: not idempotent (each POST may start one more
    operation), so the client only re-sends it when the failure proves nothing started.
    """

    family: Family
    method: str  # API method, e.g. "dicomStores.import"
    what: str  # for messages, e.g. "import into DICOM store projects/.../dicomStores/s"
    resource: str  # the resource a 404 or 403 is about
    permission: str  # IAM permission the caller needs
    role: str  # a predefined role that grants it
    starts_operation: bool = False
    not_found_hint: str = DEFAULT_NOT_FOUND_HINT


class OutcomeUnknownError(ApiError):
    """A request that starts an operation failed in a way that hides whether it started.

    Raised instead of re-sending an import/export POST after a connection loss or timeout once the
    request was sent, or a 500/502/504 answer. ``sent_at`` (UTC) bounds the possible operation's
    ``createTime``: find the operation before resubmitting (the executor's resolver, or
    ``operations_started_since(client, dataset, sent_at, known=...)`` for one start). Always
    ``retriable``.
    """

    def __init__(self, message: str, *, call: Call, sent_at: datetime, status: int | None) -> None:
        super().__init__(message, status=status, reason="OUTCOME_UNKNOWN", retriable=True)
        self.call = call
        self.sent_at = sent_at


@dataclass(frozen=True)
class ServerError:
    """The useful part of a Google error body ``{"error": {"code", "message", "status"}}``."""

    message: str
    reason: str | None
    error_info: tuple[str, ...] = ()
    """The ``reason`` of each ``google.rpc.ErrorInfo`` in ``details`` (a contract; the
    message text is not)."""

    @classmethod
    def parse(cls, body: bytes) -> ServerError:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            text = body.decode("utf-8", "replace").strip()
            return cls(one_line(text) or "no error details", None)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "no error details")
            status = error.get("status")
            infos = tuple(str(d["reason"]) for d in error_infos(error) if d.get("reason"))
            return cls(one_line(message), str(status) if status else None, infos)
        if isinstance(error, str):  # OAuth-style {"error": "invalid_token"}
            return cls(one_line(str(data.get("error_description") or error)), error)
        return cls(one_line(body.decode("utf-8", "replace")), None)


# The last two are the Cloud SDK's own projects: ADC user credentials without a quota project
# are billed there, and the API answers that it "has not been used in project 764086051850".
_ASKS_FOR_QUOTA_PROJECT = re.compile(
    r"quota project|x-goog-user-project|user[_ ]?project|project (764086051850|32555940559)\b",
    re.IGNORECASE,
)


def asks_for_quota_project(message: str, error_info: tuple[str, ...] = ()) -> bool:
    """Whether a 403 is about the quota project, not a role: ADC user credentials without one
    ("... API requires a quota project, which is not set by default"), or a quota project the
    caller may not use (ErrorInfo ``USER_PROJECT_DENIED``)."""
    if "USER_PROJECT_DENIED" in error_info:
        return True
    return bool(_ASKS_FOR_QUOTA_PROJECT.search(message))


def quota_project_fix(error_info: tuple[str, ...] = ()) -> str:
    """The fix for a 403 ``asks_for_quota_project`` recognised."""
    if "USER_PROJECT_DENIED" in error_info:
        return (
            f"{QUOTA_PROJECT_HINT}, naming a project where the caller has"
            " roles/serviceusage.serviceUsageConsumer"
        )
    return QUOTA_PROJECT_HINT


def error_from_response(
    call: Call,
    status: int,
    body: bytes,
    *,
    retry_after: float | None = None,
    anonymous: bool = False,
    attempts: int = 1,
) -> ApiError:
    """The ApiError for an HTTP error answer to ``call`` (after ``attempts`` tries)."""
    server = ServerError.parse(body)
    tag = f"{status} {server.reason}" if server.reason else str(status)
    said = f"({tag}): {server.message}"
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    retriable = status in HEALTHCARE.statuses
    if status == 401:
        fix = (
            "the endpoint requires credentials: set credentials to adc or service_account in the"
            " config"
            if anonymous
            else "the access token was refused: run `gcloud auth application-default login` or"
            " check the service-account key file"
        )
        message = f"{call.what}: not authenticated {said}; {fix}"
    elif status == 403 and asks_for_quota_project(server.message, server.error_info):
        message = (
            f"{call.what}: no usable quota project {said}; {quota_project_fix(server.error_info)}"
        )
    elif status == 403:
        message = (
            f"{call.what}: permission denied {said}; grant the caller {call.permission}"
            f" (e.g. {call.role}) on {call.resource}"
        )
    elif status == 404:
        message = f"{call.what}: {call.resource} not found {said}; {call.not_found_hint}"
    elif status == 409:
        message = f"{call.what}: {call.resource} already exists {said}"
    elif status == 400:
        message = f"{call.what}: rejected as invalid {said}"
    elif status == 429:
        message = (
            f"{call.what}: quota exhausted{tried} {said}; lower the request rate or the"
            " operations in flight in the config, or ask for more quota"
        )
    elif status >= 500:
        message = f"{call.what}: server error{tried} {said}; this is transient, run again later"
    else:
        message = f"{call.what}: unexpected HTTP {said}"
    return ApiError(
        message,
        status=status,
        reason=server.reason,
        retriable=retriable,
        retry_after=retry_after,
    )


def connection_error(
    call: Call, endpoint: str, cause: BaseException, *, sent: bool, attempts: int = 1
) -> ApiError:
    """The ApiError for a request that got no HTTP answer (refused, reset, timed out)."""
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if not sent:
        detail = one_line(str(cause)) or type(cause).__name__
        message = (
            f"{call.what}: cannot connect to {endpoint}{tried} ({detail}); check the endpoint in"
            " the config and that the server is running and reachable"
        )
    elif isinstance(cause, TimeoutError):
        message = (
            f"{call.what}: no answer from {endpoint} in time{tried}; the service or the network"
            " is slow, run again later or raise the request timeout"
        )
    else:
        message = (
            f"{call.what}: connection to {endpoint} lost{tried} ({type(cause).__name__});"
            " check the network, then run again"
        )
    return ApiError(message, reason="CONNECTION", retriable=True)
