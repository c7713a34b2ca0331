"""DICOM parsing of the emulator: bad bytes become failures with a reason, never exceptions."""

from __future__ import annotations

import io

import pydicom
import pytest
from hc_testkit import corpus
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement

from bulkmover.corpus import CorpusFile, FileKind
from bulkmover.emulator.healthcare.dicomfiles import DicomFailure, InstanceRecord, parse_instance

FILES = corpus(studies=4, series=1, instances=1, bad=8, seed=81)
VALID = [f for f in FILES if f.valid]


@pytest.mark.parametrize("f", FILES, ids=lambda f: f.kind.value)
def test_corpus_files_parse_as_their_kind(f: CorpusFile) -> None:
    result = parse_instance(f.data)
    if f.kind is FileKind.DICOM:
        assert isinstance(result, InstanceRecord)
        assert (result.study_uid, result.series_uid, result.sop_uid) == (
            f.study_uid,
            f.series_uid,
            f.sop_uid,
        )
        assert result.attributes["Modality"] == f.modality
        assert result.attributes["StudyDate"] == f.study_date
    else:
        assert isinstance(result, DicomFailure) and result.code == 3 and result.message


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(0, len(VALID) - 1),
    cut=st.floats(0.0, 0.999),
    flips=st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(0, 255)), max_size=4),
)
def test_damaged_files_never_raise(index: int, cut: float, flips: list[tuple[float, int]]) -> None:
    data = bytearray(VALID[index].data)
    for where, value in flips:
        data[int(where * len(data))] = value
    damaged = bytes(data[: int(cut * len(data))])
    result = parse_instance(damaged)
    assert isinstance(result, InstanceRecord | DicomFailure)
    if isinstance(result, DicomFailure):
        assert result.message and "\n" not in result.message


def element_ends(data: bytes) -> set[int]:
    """Offsets where a top-level element ends: a cut there leaves a valid, shorter file."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ends = set()
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.length != 0xFFFFFFFF:
            ends.add(raw.value_tell + raw.length)
    return ends


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5, 0.9, 0.999])
def test_truncated_files_are_failures(fraction: float) -> None:
    """A cut inside an element is caught (pydicom alone reads on silently); a cut between two
    elements leaves a valid DICOM file, which the real API would take too."""
    for f in VALID:
        cut = int(len(f.data) * fraction)
        result = parse_instance(f.data[:cut])
        assert isinstance(result, DicomFailure) or cut in element_ends(f.data), (f.name, cut)
