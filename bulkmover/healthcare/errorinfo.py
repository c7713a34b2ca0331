"""``google.rpc.ErrorInfo`` from an error body: which quota a 429 is about, when it says.

Google documents quota errors as carrying ErrorInfo in ``details`` (``reason``, and in
``metadata`` ``quota_metric`` and ``quota_limit``). The message text is not a contract; these
fields are, so a 429 is classified on them first (``execution.decisions.throttle_target``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


@dataclass(frozen=True)
class QuotaInfo:
    reason: str | None
    metric: str | None
    limit: str | None

    @property
    def names(self) -> str:
        """Metric and limit, lower case, for matching words in them."""
        return f"{self.metric or ''} {self.limit or ''}".lower()


def error_infos(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every ``google.rpc.ErrorInfo`` in the ``details`` of an ``error`` object."""
    details = error.get("details")
    return [
        d
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and d.get("@type") == ERROR_INFO
    ]


def quota_info(body: bytes) -> QuotaInfo | None:
    """The first ErrorInfo of an error body, or None (no details, or not JSON)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    for detail in error_infos(error) if isinstance(error, dict) else []:
        metadata = detail.get("metadata")
        meta = metadata if isinstance(metadata, dict) else {}
        return QuotaInfo(
            reason=_text(detail.get("reason")),
            metric=_text(meta.get("quota_metric")),
            limit=_text(meta.get("quota_limit")),
        )
    return None


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


__all__ = ["ERROR_INFO", "QuotaInfo", "error_infos", "quota_info"]
