"""Export and retrieve formats: which ``mimeType`` values the emulator produces, and how.

The API documents more transfer syntaxes than pydicom and Pillow can write without extra codecs;
those are refused with a message that says so, rather than silently exported in another syntax.

>>> parse_mime_type("application/dicom; transfer-syntax=*")
ExportFormat(kind='dicom', transfer_syntax='*')
>>> parse_mime_type("image/png").extension
'.png'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bulkmover.emulator.healthcare.rpc import invalid
from bulkmover.emulator.mediatypes import split_media_type

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
AS_STORED = "*"

Kind = Literal["dicom", "octet", "png", "jpeg"]

EXTENSIONS: dict[str, str] = {"dicom": ".dcm", "octet": "", "png": ".png", "jpeg": ".jpg"}

# Documented by the API (discovery document, GcsDestination.mimeType) but not produced here.
DOCUMENTED_ONLY = {
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.110",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.112",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.8.1",
}

SUPPORTED = (
    "application/dicom; transfer-syntax=* (as stored)",
    f"application/dicom; transfer-syntax={IMPLICIT_LE}",
    f"application/dicom; transfer-syntax={EXPLICIT_LE} (also plain application/dicom)",
    "application/octet-stream; transfer-syntax=* or "
    f"{EXPLICIT_LE} (raw pixel data; plain application/octet-stream = {EXPLICIT_LE})",
    "image/png",
    f"image/jpeg (or image/jpeg; transfer-syntax={JPEG_BASELINE})",
)


@dataclass(frozen=True)
class ExportFormat:
    """What to write per instance: ``transfer_syntax`` '*' keeps the stored encoding."""

    kind: Kind
    transfer_syntax: str = AS_STORED

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.kind]

    @property
    def per_frame(self) -> bool:
        """Frame-based formats write one file per frame of a multi-frame instance."""
        return self.kind != "dicom"

    @property
    def content_type(self) -> str:
        return {
            "dicom": "application/dicom",
            "octet": "application/octet-stream",
            "png": "image/png",
            "jpeg": "image/jpeg",
        }[self.kind]


ORIGINAL = ExportFormat("dicom", AS_STORED)


def parse_mime_type(value: object, field: str = "gcsDestination.mimeType") -> ExportFormat:
    """The format of an export request's mimeType; '' means the original DICOM as uploaded."""
    if value is None or value == "":
        return ORIGINAL
    if not isinstance(value, str):
        raise invalid(f"{field} must be a string such as 'application/dicom; transfer-syntax=*'")
    media, params = split_media_type(value)
    syntax = params.get("transfer-syntax")
    fmt: ExportFormat | None = None
    if media == "application/dicom":
        if syntax in (None, EXPLICIT_LE):
            fmt = ExportFormat("dicom", EXPLICIT_LE)
        elif syntax in (AS_STORED, IMPLICIT_LE):
            fmt = ExportFormat("dicom", syntax)
    elif media == "application/octet-stream":
        if syntax in (None, EXPLICIT_LE):
            fmt = ExportFormat("octet", EXPLICIT_LE)
        elif syntax == AS_STORED:
            fmt = ExportFormat("octet", AS_STORED)
    elif media == "image/png" and syntax is None:
        fmt = ExportFormat("png", EXPLICIT_LE)
    elif media == "image/jpeg" and syntax in (None, JPEG_BASELINE):
        fmt = ExportFormat("jpeg", JPEG_BASELINE)
    if fmt is not None:
        return fmt
    supported = "; ".join(SUPPORTED)
    if media == "application/dicom" and syntax in DOCUMENTED_ONLY:
        raise invalid(
            f"{field} {value!r} is documented by the API but the emulator cannot write transfer "
            f"syntax {syntax} (no codec); use one of: {supported}"
        )
    raise invalid(f"unsupported {field} {value!r}; use one of: {supported}")
