"""DICOM templates compiled from pydicom's bundled samples, rendered by patching bytes.

Parsing and re-encoding a dataset per instance costs milliseconds; a corpus of a million files
cannot afford that. So each sample is parsed once, every element that changes between instances
(UIDs, patient, study, series and instance attributes) is given a placeholder of a fixed width,
the dataset is written once, and the offsets of those values are recorded. Rendering an instance
is then a copy of the template bytes with the new values written over the placeholders: the
lengths never change, so every element header (and the file meta group length) stays right.

Example::

    template = load_templates()[0]
    data = bytes(template.fill(template.data, {"SOPInstanceUID": uid, "InstanceNumber": "1"}))
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset
from pydicom.filewriter import dcmwrite
from pydicom.tag import Tag
from pydicom.uid import UID

from bulkmover.corpus.uids import UID_LENGTH
from bulkmover.errors import BulkmoverError


@dataclass(frozen=True, slots=True)
class SlotKind:
    """How a value of one DICOM VR is stored in a slot: width on disk, padding, placeholder."""

    width: int
    pad: bytes
    placeholder: str


def _text(width: int) -> SlotKind:
    return SlotKind(width, b" ", "X" * width)


_UID = SlotKind(UID_LENGTH, b"\0", "2.25." + "1" * (UID_LENGTH - 5))
_DATE = SlotKind(8, b" ", "19000101")
_TIME = SlotKind(6, b" ", "111111")

#: Elements set on every instance, with their slot shapes (all widths even: no VR padding).
CORE_SLOTS: Mapping[str, SlotKind] = {
    "SOPInstanceUID": _UID,
    "StudyInstanceUID": _UID,
    "SeriesInstanceUID": _UID,
    "PatientName": _text(48),
    "PatientID": _text(16),
    "PatientBirthDate": _DATE,
    "PatientSex": _text(2),
    "PatientAge": SlotKind(4, b" ", "000Y"),
    "StudyDate": _DATE,
    "StudyTime": _TIME,
    "AccessionNumber": _text(16),
    "StudyID": _text(8),
    "StudyDescription": _text(48),
    "ReferringPhysicianName": _text(32),
    "InstitutionName": _text(40),
    "SeriesDate": _DATE,
    "SeriesTime": _TIME,
    "SeriesNumber": SlotKind(6, b" ", "1" * 6),
    "SeriesDescription": _text(48),
    "InstanceNumber": SlotKind(8, b" ", "1" * 8),
    "ContentDate": _DATE,
    "ContentTime": _TIME,
}

#: Elements rewritten only where the sample already has them.
OPTIONAL_SLOTS: Mapping[str, SlotKind] = {
    "FrameOfReferenceUID": _UID,
    "AcquisitionDate": _DATE,
    "AcquisitionTime": _TIME,
    "InstanceCreationDate": _DATE,
    "InstanceCreationTime": _TIME,
}

ALL_SLOTS: Mapping[str, SlotKind] = {**CORE_SLOTS, **OPTIONAL_SLOTS}

#: Identifying elements of the samples that are dropped rather than rewritten.
_DROPPED = ("OtherPatientIDsSequence", "OtherPatientIDs", "OtherPatientNames")

#: (sample file bundled with pydicom, relative weight of studies made from it). All are small,
#: uncompressed and carry pixel data; two transfer syntaxes (explicit and implicit VR LE).
SAMPLES: tuple[tuple[str, int], ...] = (
    ("CT_small.dcm", 35),
    ("MR_small.dcm", 20),
    ("MR_small_implicit.dcm", 15),
    ("SC_rgb_small_odd.dcm", 15),
    ("rtdose_1frame.dcm", 15),
)


@dataclass(frozen=True, slots=True)
class Slot:
    offset: int
    kind: SlotKind


@dataclass(frozen=True, slots=True)
class Template:
    """A sample compiled for byte patching. ``slots`` maps a keyword to where its value lives
    (SOPInstanceUID lives twice: file meta and dataset)."""

    source: str
    modality: str
    sop_class_uid: str
    weight: int
    explicit_vr: bool
    data: bytes
    slots: Mapping[str, tuple[Slot, ...]]
    pixel_length_offset: int

    def fill(self, base: bytes | bytearray, values: Mapping[str, str]) -> bytearray:
        """A copy of ``base`` (the template or a partly filled copy) with ``values`` written in.

        Keywords the template has no slot for (an optional element it lacks) are skipped.
        """
        out = bytearray(base)
        for keyword, value in values.items():
            for slot in self.slots.get(keyword, ()):
                kind = slot.kind
                raw = value.encode("ascii")
                if len(raw) > kind.width:
                    raise ValueError(f"{keyword}={value!r} exceeds its {kind.width}-byte slot")
                out[slot.offset : slot.offset + kind.width] = raw.ljust(kind.width, kind.pad)
        return out


def _sample_path(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if not isinstance(path, str):
        raise BulkmoverError(
            f"pydicom sample {name} is missing (pydicom {pydicom.__version__}): "
            "reinstall pydicom 3.x with its bundled test files"
        )
    return path


def _prepared(name: str) -> FileDataset:
    """The sample with placeholders in every slot, identifying leftovers dropped."""
    ds = pydicom.dcmread(_sample_path(name))
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
        raise BulkmoverError(f"pydicom sample {name} has no uncompressed pixel data")
    for keyword in _DROPPED:
        if keyword in ds:
            delattr(ds, keyword)
    for tag in [t for t in ds.keys() if t.element == 0]:  # deprecated group lengths
        del ds[tag]
    for keyword, kind in ALL_SLOTS.items():
        if keyword in CORE_SLOTS or keyword in ds:
            setattr(ds, keyword, kind.placeholder)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(_UID.placeholder)
    ds.preamble = b"\0" * 128  # CT_small's preamble is a TIFF header; a PACS file has zeros
    return ds


def compile_template(name: str, weight: int = 1) -> Template:
    """Parse one sample once and record where each slot's value sits in its encoding."""
    ds = _prepared(name)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcmwrite(buf, ds, enforce_file_format=True)
    data = buf.getvalue()

    reread = pydicom.dcmread(io.BytesIO(data))
    slots: dict[str, tuple[Slot, ...]] = {}
    for keyword, kind in ALL_SLOTS.items():
        if keyword not in ds:
            continue
        raw = reread.get_item(Tag(keyword), keep_deferred=True)
        if not isinstance(raw, RawDataElement) or raw.value_tell is None:
            raise BulkmoverError(f"template {name}: cannot locate {keyword} in its encoding")
        offset = raw.value_tell
        _check(name, keyword, data, offset, kind)
        slots[keyword] = (Slot(offset, kind),)

    meta_end = data.index(b"DICM") + 4 + 12 + int(reread.file_meta.FileMetaInformationGroupLength)
    needle = _UID.placeholder.encode()
    meta_offset = data.find(needle, 0, meta_end)
    if meta_offset < 0 or data.find(needle, meta_offset + 1, meta_end) >= 0:
        raise BulkmoverError(f"template {name}: cannot locate MediaStorageSOPInstanceUID")
    slots["SOPInstanceUID"] = (Slot(meta_offset, _UID), *slots["SOPInstanceUID"])

    pixel = reread.get_item(Tag("PixelData"), keep_deferred=True)
    if not isinstance(pixel, RawDataElement) or pixel.value_tell is None:
        raise BulkmoverError(f"template {name}: cannot locate Pixel Data")
    return Template(
        source=name,
        modality=str(ds.Modality),
        sop_class_uid=str(ds.SOPClassUID),
        weight=weight,
        explicit_vr=not ds.file_meta.TransferSyntaxUID.is_implicit_VR,
        data=data,
        slots=slots,
        pixel_length_offset=pixel.value_tell - 4,
    )


def _check(name: str, keyword: str, data: bytes, offset: int, kind: SlotKind) -> None:
    if data[offset : offset + kind.width] != kind.placeholder.encode():
        raise BulkmoverError(f"template {name}: {keyword} is not encoded at a fixed width")


@functools.cache
def load_templates() -> tuple[Template, ...]:
    """Every sample template, compiled once per process."""
    return tuple(compile_template(name, weight) for name, weight in SAMPLES)


def truncation_template(template: Template) -> Template:
    """The template whose cut renderings make pydicom fail: ``template`` itself if it is
    explicit VR, else an explicit-VR one of the same modality (or any).

    pydicom 3 reads any prefix of an implicit-VR dataset without an error, and a prefix of an
    explicit-VR one too unless the cut falls inside a 4-byte length field.
    """
    if template.explicit_vr:
        return template
    explicit = [t for t in load_templates() if t.explicit_vr]
    same = [t for t in explicit if t.modality == template.modality]
    return (same or explicit)[0]
