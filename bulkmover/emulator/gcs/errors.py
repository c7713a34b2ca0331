"""GCS JSON API errors: one exception type, rendered as the service's JSON error body.

Handlers raise :class:`GcsApiError` (an :class:`~bulkmover.errors.ApiError`); the error middleware
turns it into ``{"error": {"code": ..., "message": ..., "errors": [{"domain", "reason",
"message"}]}}`` with the same status, as real Cloud Storage does.
"""

from __future__ import annotations

from typing import Any

from bulkmover.errors import ApiError


class GcsApiError(ApiError):
    """An error answer of the emulated Cloud Storage JSON API."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            reason=reason,
            retriable=status == 429 or status >= 500,
            retry_after=retry_after,
        )
        self.domain = domain

    def body(self) -> dict[str, Any]:
        message = str(self)
        return {
            "error": {
                "code": self.status,
                "message": message,
                "errors": [{"domain": self.domain, "reason": self.reason, "message": message}],
            }
        }


def invalid(message: str) -> GcsApiError:
    return GcsApiError(400, "invalid", message)


def bad_parameter(name: str, value: str) -> GcsApiError:
    return GcsApiError(400, "invalidParameter", f"Invalid value for {name}: {value!r}")


def parse_error(message: str = "Parse Error") -> GcsApiError:
    return GcsApiError(400, "parseError", message)


def bucket_not_found(bucket: str) -> GcsApiError:
    return GcsApiError(404, "notFound", f"The specified bucket does not exist: {bucket}")


def object_not_found(bucket: str, name: str) -> GcsApiError:
    return GcsApiError(404, "notFound", f"No such object: {bucket}/{name}")


def condition_not_met() -> GcsApiError:
    return GcsApiError(
        412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."
    )


def backend_error() -> GcsApiError:
    return GcsApiError(503, "backendError", "Backend Error")


def rate_limited(retry_after: float) -> GcsApiError:
    return GcsApiError(
        429,
        "rateLimitExceeded",
        "The rate of read requests to this bucket exceeds the emulator's read_rate_limit.",
        domain="usageLimits",
        retry_after=retry_after,
    )
