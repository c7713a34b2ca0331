"""The 429 answers, in each wording the real API may use (the ``quota_errors`` knob).

Google documents that quota errors carry ``google.rpc.ErrorInfo`` in ``details`` (reason,
``quota_metric``, ``quota_limit``); what the running-operations cap says is not documented at
all. The engine must tell the two apart without relying on this emulator's own sentences, so
the emulator can answer with its sentences, with Google's style and details, or with a bare
message that says nothing of which limit it was.
"""

from __future__ import annotations

from typing import Any, Literal

from bulkmover.emulator.healthcare.rpc import ApiFailure, Code

Style = Literal["emulator", "error_info", "bare"]

BARE = "Resource has been exhausted (e.g. check quota)."
SERVICE = "healthcare.googleapis.com"


def _error_info(project: str, metric: str, limit: str) -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "consumer": f"projects/{project}",
                "quota_metric": f"{SERVICE}/{metric}",
                "quota_limit": limit,
                "service": SERVICE,
            },
        }
    ]


def running_cap(style: Style, project: str, running: int, cap: int) -> ApiFailure:
    """A start refused: ``running`` operations run in ``project``, the cap is ``cap``."""
    if style == "bare":
        return ApiFailure(Code.RESOURCE_EXHAUSTED, BARE, retry_after=5)
    if style == "error_info":
        return ApiFailure(
            Code.RESOURCE_EXHAUSTED,
            f"Quota exceeded for quota metric 'Concurrent long-running operations' and limit"
            f" 'Concurrent long-running operations per project' of service '{SERVICE}' for"
            f" consumer 'projects/{project}'.",
            retry_after=5,
            details=_error_info(project, "concurrent_lro_ops", "ConcurrentLroOpsPerProject"),
        )
    return ApiFailure(
        Code.RESOURCE_EXHAUSTED,
        f"too many long-running operations in project {project}: {running} running, "
        f"the limit is {cap}; wait for one to finish",
        retry_after=5,
    )


def rate_quota(style: Style, project: str, family: str, per_minute: int, wait: float) -> ApiFailure:
    """A request over ``family``'s per-minute quota."""
    if style == "bare":
        return ApiFailure(Code.RESOURCE_EXHAUSTED, BARE, retry_after=wait)
    if style == "error_info":
        return ApiFailure(
            Code.RESOURCE_EXHAUSTED,
            f"Quota exceeded for quota metric '{family} requests' and limit '{family} requests"
            f" per minute per project' of service '{SERVICE}' for consumer 'projects/{project}'.",
            retry_after=wait,
            details=_error_info(project, f"{family}_requests", f"{family}RequestsPerMinute"),
        )
    return ApiFailure(
        Code.RESOURCE_EXHAUSTED,
        f"Quota exceeded for quota group '{family}' of project {project}: "
        f"{per_minute} requests per minute; retry after {wait:.1f}s",
        retry_after=wait,
    )
