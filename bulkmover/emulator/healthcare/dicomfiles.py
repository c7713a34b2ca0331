"""DICOM parsing and rendering with pydicom and Pillow: the CPU work, run in worker processes.

Every function here is pure and module-level so a process pool can run it. Parsing checks more
than pydicom does by itself: pydicom reads a truncated file without complaint, so element lengths,
encapsulated fragments and the size of native pixel data are checked against what the file holds.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from bulkmover.emulator.healthcare.formats import AS_STORED, IMPLICIT_LE, ExportFormat
from bulkmover.emulator.healthcare.rpc import Code

P = ParamSpec("P")
R = TypeVar("R")
UNDEFINED_LENGTH = 0xFFFFFFFF
REQUIRED = (
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("SOPInstanceUID", "(0008,0018)"),
    ("SOPClassUID", "(0008,0016)"),
)


@dataclass(frozen=True)
class InstanceRecord:
    """What the index keeps of an instance: its UIDs, sizes and the attributes QIDO matches."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    size: int
    structured_size: int
    frames: int
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DicomFailure:
    """Why a file is not an acceptable DICOM instance (google.rpc code and message)."""

    code: int
    message: str


# Attributes kept for QIDO (keyword -> level), beyond the UIDs.
QIDO_ATTRIBUTES: dict[str, str] = {
    "PatientName": "study",
    "PatientID": "study",
    "PatientBirthDate": "study",
    "PatientSex": "study",
    "StudyDate": "study",
    "StudyTime": "study",
    "AccessionNumber": "study",
    "StudyID": "study",
    "StudyDescription": "study",
    "ReferringPhysicianName": "study",
    "Modality": "series",
    "SeriesNumber": "series",
    "SeriesDescription": "series",
    "InstanceNumber": "instance",
    "Rows": "instance",
    "Columns": "instance",
    "NumberOfFrames": "instance",
}


def _is_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and all(part.isdigit() for part in value.split("."))


def _quiet(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with pydicom's warnings silenced (odd but readable values are common)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _is_sequence(tag: Any, raw: Any) -> bool:
    vr = getattr(raw, "VR", None)
    if vr is None:  # implicit VR: the data dictionary knows
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return bool(raw.length == UNDEFINED_LENGTH)
    return bool(vr == "SQ")


def _check_complete(ds: Dataset, size: int | None = None) -> str | None:
    """Why ``ds`` was cut short, or None.

    Elements are read in file order, so a cut can only damage the last element read: the last
    element of the dataset or, when that is a sequence, the last element of its last item.
    pydicom keeps a value cut short (caught by its declared length) but silently drops an
    element whose header was cut, which leaves bytes after the last element (caught by ``size``,
    the file's length, at the top level). Checking that one path keeps the check cheap.
    """
    if not len(ds):
        return None
    tag = max(ds.keys())  # elements are in ascending tag order, as in the file
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and raw.length != UNDEFINED_LENGTH:
        held = len(raw.value) if raw.value is not None else 0
        if held < raw.length:
            return f"element {tag} declares {raw.length} bytes but the file ends after {held}"
        end = raw.value_tell + raw.length
        if size is not None and raw.value_tell and end < size:
            return f"{size - end} bytes after element {tag} do not form a complete element"
    if _is_sequence(tag, raw):
        items = ds[tag].value
        return _check_complete(items[-1]) if len(items) else None
    return None


def _check_pixels(ds: Dataset) -> str | None:
    if "PixelData" not in ds:
        return None
    syntax = ds.file_meta.get("TransferSyntaxUID")
    pixels = ds.PixelData
    if syntax is not None and syntax.is_encapsulated:
        from pydicom.encaps import generate_fragments

        try:
            for _ in generate_fragments(pixels):
                pass
        except (ValueError, EOFError) as exc:
            return f"encapsulated pixel data is incomplete ({exc})"
        return None
    try:
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
            samples = 2  # chroma shared by pixel pairs
        bits = int(ds.Rows) * int(ds.Columns) * samples * frame_count(ds) * int(ds.BitsAllocated)
        expected = (bits + 7) // 8
    except (AttributeError, TypeError, ValueError):
        return None
    if len(pixels) < expected:
        return f"pixel data holds {len(pixels)} bytes, the image needs {expected}"
    return None


def _text(value: Any) -> str:
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"}
_TAGS: dict[str, int] = {}


def _value(ds: Dataset, keyword: str, utf8: bool = False) -> Any:
    """A top-level value, decoded straight from the raw bytes for text VRs (much cheaper than
    pydicom's conversion, which matters at hundreds of files per second)."""
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = int(tag_for_keyword(keyword) or 0)
    if tag not in ds:
        return None
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        vr = raw.VR or dictionary_VR(tag)
        if vr in TEXT_VRS:
            return raw.value.decode("utf-8" if utf8 else "latin-1", "replace")
    return ds[tag].value


def frame_count(ds: Dataset) -> int:
    """NumberOfFrames, or 1 when absent or unreadable (some writers put junk in it)."""
    try:
        return max(1, int(str(_value(ds, "NumberOfFrames") or "1").strip() or 1))
    except (TypeError, ValueError):
        return 1


@_quiet
def parse_instance(data: bytes) -> InstanceRecord | DicomFailure:
    """Parse and check one file's bytes; a failure says why in the API's words. Never raises."""
    if not data:
        return DicomFailure(Code.INVALID_ARGUMENT, "empty DICOM instance found")
    try:
        return _parse(data)
    except InvalidDicomError:
        return DicomFailure(
            Code.INVALID_ARGUMENT,
            "failed to parse DICOM: not a DICOM Part 10 file (no 'DICM' prefix after the "
            "128-byte preamble)",
        )
    except Exception as exc:  # pydicom raises many types on malformed input
        message = f"failed to parse DICOM: {type(exc).__name__}: {exc}".splitlines()[0]
        return DicomFailure(Code.INVALID_ARGUMENT, message[:500])


def _parse(data: bytes) -> InstanceRecord | DicomFailure:
    ds = _read(data)
    reason = _check_complete(ds, len(data)) or _check_pixels(ds)
    if reason:
        return DicomFailure(Code.INVALID_ARGUMENT, f"failed to parse DICOM: truncated: {reason}")
    utf8 = "ISO_IR 192" in _text(_value(ds, "SpecificCharacterSet"))
    uids: dict[str, str] = {}
    for keyword, tag in REQUIRED:
        value = _text(_value(ds, keyword, utf8)).strip().rstrip("\x00")
        if not value:
            return DicomFailure(
                Code.INVALID_ARGUMENT, f"DICOM instance is missing required {keyword} {tag}"
            )
        if not _is_uid(value):
            return DicomFailure(
                Code.INVALID_ARGUMENT, f"DICOM instance has an invalid {keyword} {value[:80]!r}"
            )
        uids[keyword] = value
    attributes: dict[str, str] = {}
    for keyword in (*QIDO_ATTRIBUTES, "SpecificCharacterSet"):
        try:
            text = _text(_value(ds, keyword, utf8)).strip(" \x00")
        except Exception:  # an unreadable optional value is left out, as the index would
            continue
        if text:
            attributes[keyword] = text
    pixel_size = len(ds.PixelData) if "PixelData" in ds else 0
    syntax = ds.file_meta.get("TransferSyntaxUID")
    return InstanceRecord(
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        transfer_syntax=str(syntax) if syntax else "",
        size=len(data),
        structured_size=len(data) - pixel_size,
        frames=frame_count(ds) if pixel_size else 0,
        attributes=attributes,
    )


def parse_and_stage(data: bytes, staging: str) -> InstanceRecord | DicomFailure:
    """Parse, and on success write the bytes to ``staging`` (the caller renames or removes it)."""
    result = parse_instance(data)
    if isinstance(result, InstanceRecord):
        tmp = f"{staging}.part"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, staging)
    return result


def parse_and_stage_many(items: list[tuple[bytes, str]]) -> list[InstanceRecord | DicomFailure]:
    """:func:`parse_and_stage` over a batch (one call into a worker process)."""
    return [parse_and_stage(data, staging) for data, staging in items]


class RenderError(Exception):
    """An instance that cannot be written in the requested format (becomes a log entry)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[RenderError], tuple[int, str]]:
        return (RenderError, (self.code, self.message))


def _decoded(ds: Dataset) -> Dataset:
    """``ds`` with native little-endian pixel data (decompressed or byte-swapped as needed)."""
    syntax = ds.file_meta.TransferSyntaxUID
    if "PixelData" in ds and syntax.is_compressed:
        try:
            ds.decompress()
        except Exception as exc:
            raise RenderError(
                Code.FAILED_PRECONDITION,
                f"cannot transcode from transfer syntax {syntax} ({syntax.name}): "
                f"{exc}".splitlines()[0],
            ) from None
    elif "PixelData" in ds and not syntax.is_little_endian:
        arr = ds.pixel_array
        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    return ds


def _transcode(path: Path, syntax: str) -> bytes:
    ds = _decoded(_load(path))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    buf = io.BytesIO()
    pydicom.dcmwrite(
        buf, ds, implicit_vr=syntax == IMPLICIT_LE, little_endian=True, enforce_file_format=True
    )
    return buf.getvalue()


def _load(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def _frames_raw(ds: Dataset) -> list[bytes]:
    """Pixel data per frame, as stored (encapsulated frames stay compressed)."""
    if "PixelData" not in ds:
        raise RenderError(Code.FAILED_PRECONDITION, "instance has no pixel data")
    frames = frame_count(ds)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        from pydicom.encaps import generate_frames

        return list(generate_frames(ds.PixelData, number_of_frames=frames))
    data = bytes(ds.PixelData)
    step = len(data) // frames
    return [data[i * step : (i + 1) * step] for i in range(frames)]


def _images(ds: Dataset, kind: str) -> list[bytes]:
    import numpy as np
    from PIL import Image

    if "PixelData" not in ds:
        raise RenderError(Code.FAILED_PRECONDITION, "instance has no pixel data to render")
    try:
        arr = _decoded(ds).pixel_array
    except RenderError:
        raise
    except Exception as exc:
        raise RenderError(
            Code.FAILED_PRECONDITION, f"cannot decode pixel data: {exc}".splitlines()[0]
        ) from None
    frames = frame_count(ds)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1:
        arr = arr[np.newaxis, ...]
    out: list[bytes] = []
    for frame in arr:
        pixels = frame.astype("float64")
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0
        image = Image.fromarray(scaled.astype("uint8"), mode="RGB" if samples == 3 else "L")
        buf = io.BytesIO()
        image.save(buf, format="PNG" if kind == "png" else "JPEG")
        out.append(buf.getvalue())
    return out


@_quiet
def render(path: str, fmt: ExportFormat) -> list[tuple[str, bytes]]:
    """The files of one instance in ``fmt``: (suffix after the instance UID, bytes) pairs.

    The suffix is '' for a single file and ``/{frame}`` (from 1) per frame of a multi-frame
    instance in a frame-based format; the caller adds the extension.
    """
    try:
        return _render(Path(path), fmt)
    except (RenderError, FileNotFoundError):
        raise
    except Exception as exc:  # pydicom/Pillow on odd content: a per-instance failure
        message = f"cannot write the instance as {fmt.content_type}: {type(exc).__name__}: {exc}"
        raise RenderError(Code.FAILED_PRECONDITION, message.splitlines()[0][:500]) from None


def _render(file: Path, fmt: ExportFormat) -> list[tuple[str, bytes]]:
    if fmt.kind == "dicom":
        if fmt.transfer_syntax == AS_STORED:
            return [("", file.read_bytes())]
        return [("", _transcode(file, fmt.transfer_syntax))]
    ds = _load(file)
    if fmt.kind == "octet":
        if fmt.transfer_syntax != AS_STORED:
            ds = _decoded(ds)
        parts = _frames_raw(ds)
    else:
        parts = _images(ds, fmt.kind)
    if len(parts) == 1:
        return [("", parts[0])]
    return [(f"/{i}", part) for i, part in enumerate(parts, start=1)]


@_quiet
def metadata_json(path: str, bulk_uri: str) -> dict[str, Any]:
    """DICOM JSON of an instance; pixel data and other large values become a BulkDataURI."""
    ds = _load(Path(path))

    def bulk(elem: Any) -> str:
        return f"{bulk_uri}/bulkdata/{elem.tag:08X}"

    result: dict[str, Any] = ds.to_json_dict(
        bulk_data_threshold=1024, bulk_data_element_handler=bulk
    )
    return result


@_quiet
def bulk_value(path: str, tag_path: str) -> bytes | None:
    """The bytes of the element a BulkDataURI names (``.../bulkdata/7FE00010``), or None.

    :func:`metadata_json` names an element by its tag alone, also inside sequences, so the
    first element with that tag (depth first) is the one.
    """
    try:
        tag = int(tag_path.rsplit("/", 1)[-1], 16)
    except ValueError:
        return None
    ds = _load(Path(path))

    def find(dataset: Dataset) -> bytes | None:
        for elem in dataset:
            if elem.tag == tag:
                value = elem.value
                if isinstance(value, bytes):
                    return value
                return str(value).encode() if value is not None else b""
            if elem.VR == "SQ":
                for item in elem.value:
                    found = find(item)
                    if found is not None:
                        return found
        return None

    return find(ds)


@_quiet
def attributes_json(path: str, keywords: list[str]) -> dict[str, Any]:
    """DICOM JSON of the top-level attributes ``keywords`` that the instance has (QIDO
    ``includefield`` of attributes the index does not keep)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    picked = Dataset()
    for keyword in keywords:
        if keyword in ds:
            picked.add(ds[keyword])
    result: dict[str, Any] = picked.to_json_dict(bulk_data_threshold=1 << 20)
    return result
