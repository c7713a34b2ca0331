"""DICOMweb and store metrics as typed values: ``StoreMetrics``, STOW-RS bodies and ``StowAnswer``.

The wire formats stay here so the client's methods are a few lines each: a STOW-RS request is a
``multipart/related; type="application/dicom"`` body, and its answer is DICOM JSON whose
FailedSOPSequence (0008,1198) and ReferencedSOPSequence (0008,1199) say per instance what
happened. A FailureReason (0008,1197) is a DICOM status, not a google.rpc code; ``StowAnswer``
carries both, so a caller can treat a STOW failure like an import's log entry.

>>> StoreMetrics.model_validate({"name": "s", "instanceCount": "12"}).instance_count
12
>>> failure_reason(0x0111)
(6, 'duplicate SOP instance: an instance with these UIDs is already stored')
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bulkmover.errors import one_line
from bulkmover.healthcare.operations import RpcCode

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"

# DICOM JSON tags of a STOW-RS answer (PS3.18 10.5.3) and of QIDO results.
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
WARNING_REASON = "00081196"
FAILURE_REASON = "00081197"
REFERENCED_SOP_INSTANCE_UID = "00081155"
ERROR_COMMENT = "00000902"
SOP_INSTANCE_UID = "00080018"
STUDY_INSTANCE_UID = "0020000D"

DUPLICATE = 0x0111


class StoreMetrics(BaseModel):
    """``dicomStores.getDICOMStoreMetrics``: int64 counts arrive as strings, absent means 0."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    name: str = ""
    instance_count: int = Field(default=0, alias="instanceCount")
    series_count: int = Field(default=0, alias="seriesCount")
    study_count: int = Field(default=0, alias="studyCount")
    structured_storage_size_bytes: int = Field(default=0, alias="structuredStorageSizeBytes")
    blob_storage_size_bytes: int = Field(default=0, alias="blobStorageSizeBytes")

    @field_validator(
        "instance_count",
        "series_count",
        "study_count",
        "structured_storage_size_bytes",
        "blob_storage_size_bytes",
        mode="before",
    )
    @classmethod
    def _int64(cls, value: Any) -> Any:
        return 0 if value is None or value == "" else value


@dataclass(frozen=True, slots=True)
class StowAnswer:
    """What the store did with one file sent by STOW-RS.

    ``outcome`` is ``stored``, ``duplicate`` (an instance with its UIDs is already in the store:
    nothing was overwritten) or ``failed``. ``code`` is a google.rpc code derived from the DICOM
    FailureReason or the HTTP error (None when stored); ``message`` says the reason in words.
    ``attempts`` > 1 means the request was re-sent after a transient error: a ``duplicate`` may
    then be this very file, stored by the earlier attempt whose answer was lost. Either way the
    instance is in the store.
    """

    outcome: Literal["stored", "duplicate", "failed"]
    sop_uid: str | None
    code: int | None
    message: str
    attempts: int = 1

    @property
    def in_store(self) -> bool:
        return self.outcome != "failed"


# PS3.4 Annex B (C-STORE) and PS3.18 10.5.3 (STOW-RS) failure reasons.
_REASONS: dict[int, tuple[RpcCode, str]] = {
    0x0110: (RpcCode.INTERNAL, "processing failure in the store"),
    DUPLICATE: (
        RpcCode.ALREADY_EXISTS,
        "duplicate SOP instance: an instance with these UIDs is already stored",
    ),
    0x0117: (RpcCode.INVALID_ARGUMENT, "invalid SOP instance"),
    0x0122: (RpcCode.INVALID_ARGUMENT, "SOP class not supported by the store"),
    0x0124: (RpcCode.PERMISSION_DENIED, "not authorized to store the instance"),
    0xA900: (
        RpcCode.INVALID_ARGUMENT,
        "data set does not match SOP class, or belongs to another study than the request's",
    ),
    0xC122: (RpcCode.INVALID_ARGUMENT, "transfer syntax not supported"),
}
_RANGES: tuple[tuple[int, int, RpcCode, str], ...] = (
    (0xA700, 0xA7FF, RpcCode.RESOURCE_EXHAUSTED, "refused: out of resources"),
    (0xA900, 0xA9FF, RpcCode.INVALID_ARGUMENT, "data set does not match SOP class"),
    (0xC000, 0xCFFF, RpcCode.INVALID_ARGUMENT, "cannot understand: not a valid DICOM instance"),
)


def failure_reason(reason: int) -> tuple[int, str]:
    """(google.rpc code, meaning) of a DICOM FailureReason (0008,1197)."""
    known = _REASONS.get(reason)
    if known is not None:
        return int(known[0]), known[1]
    for low, high, code, text in _RANGES:
        if low <= reason <= high:
            return int(code), text
    return int(RpcCode.UNKNOWN), "failure reason not defined by the DICOM standard"


_HTTP_CODES = {
    400: RpcCode.INVALID_ARGUMENT,
    409: RpcCode.ALREADY_EXISTS,
    413: RpcCode.INVALID_ARGUMENT,
    415: RpcCode.INVALID_ARGUMENT,
    422: RpcCode.INVALID_ARGUMENT,
}
STOW_FILE_FAILURES = frozenset(_HTTP_CODES)
"""HTTP statuses of a STOW-RS answer that judge the file sent, not the caller or the store."""


def multipart_body(data: bytes) -> tuple[bytes, str]:
    """One DICOM file as a ``multipart/related`` STOW-RS body: (body, Content-Type)."""
    boundary = uuid.uuid4().hex
    while boundary.encode() in data:  # a 128-bit random boundary: practically never loops
        boundary = uuid.uuid4().hex
    body = b"".join(
        (
            f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    return body, f'multipart/related; type="{DICOM}"; boundary={boundary}'


def _first(element: Any) -> Any:
    if isinstance(element, dict):
        values = element.get("Value")
        if isinstance(values, list) and values:
            return values[0]
    return None


def _items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    values = body.get(tag, {}).get("Value") if isinstance(body.get(tag), dict) else None
    return [item for item in values or [] if isinstance(item, dict)]


def stow_answer(body: dict[str, Any], attempts: int = 1) -> StowAnswer | None:
    """The answer for the one file of a STOW-RS request, from the DICOM JSON body; None when
    the body lists no instance at all."""
    for item in _items(body, REFERENCED_SOP_SEQUENCE):
        sop = _first(item.get(REFERENCED_SOP_INSTANCE_UID))
        warning = _first(item.get(WARNING_REASON))
        note = f" (warning 0x{int(warning):04X})" if isinstance(warning, int) else ""
        return StowAnswer("stored", _str(sop), None, f"stored{note}", attempts)
    for item in _items(body, FAILED_SOP_SEQUENCE):
        sop = _str(_first(item.get(REFERENCED_SOP_INSTANCE_UID)))
        reason = _first(item.get(FAILURE_REASON))
        if not isinstance(reason, int):
            return StowAnswer(
                "failed", sop, int(RpcCode.UNKNOWN), "refused with no FailureReason", attempts
            )
        code, meaning = failure_reason(reason)
        comment = _str(_first(item.get(ERROR_COMMENT)))
        message = f"FailureReason 0x{reason:04X}: {meaning}" + (f" ({comment})" if comment else "")
        outcome: Literal["duplicate", "failed"] = "duplicate" if reason == DUPLICATE else "failed"
        return StowAnswer(outcome, sop, code, one_line(message), attempts)
    return None


def refused_answer(status: int, message: str, attempts: int = 1) -> StowAnswer:
    """A whole STOW-RS request refused for what it carried (e.g. 400: not DICOM at all)."""
    code = _HTTP_CODES.get(status, RpcCode.INVALID_ARGUMENT)
    return StowAnswer("failed", None, int(code), one_line(f"HTTP {status}: {message}"), attempts)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def sop_uid_of(result: dict[str, Any]) -> str | None:
    """SOPInstanceUID (0008,0018) of one QIDO-RS instance result."""
    return _str(_first(result.get(SOP_INSTANCE_UID)))
