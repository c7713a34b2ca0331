"""iter_corpus: real DICOM with consistent fresh UIDs, a PACS layout, bad files that fail."""

from __future__ import annotations

import io
import warnings
from collections import Counter, defaultdict

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from bulkmover.corpus import (
    NAME_PATTERN,
    CorpusFile,
    CorpusSpec,
    FileKind,
    is_valid_uid,
    iter_corpus,
)
from bulkmover.corpus.templates import load_templates

SPEC = CorpusSpec(
    studies=6, series_per_study=3, instances_per_series=4, bad_files=9, seed=11, sites=3
)


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


@pytest.fixture(scope="module")
def files() -> list[CorpusFile]:
    return list(iter_corpus(SPEC))


def test_counts_match_the_spec(files: list[CorpusFile]) -> None:
    kinds = Counter(f.kind for f in files)
    assert kinds[FileKind.DICOM] == SPEC.instances == 72
    assert sum(n for kind, n in kinds.items() if kind is not FileKind.DICOM) == 9
    assert {FileKind.TEXT, FileKind.TRUNCATED, FileKind.EMPTY, FileKind.RANDOM} <= set(kinds)
    assert len(files) == SPEC.files
    assert len({f.name for f in files}) == len(files)


def test_instances_parse_and_carry_the_uids_they_claim(files: list[CorpusFile]) -> None:
    for f in files:
        if not f.valid:
            continue
        ds = read(f.data)
        assert ds.StudyInstanceUID == f.study_uid
        assert ds.SeriesInstanceUID == f.series_uid
        assert ds.SOPInstanceUID == f.sop_uid
        assert ds.file_meta.MediaStorageSOPInstanceUID == f.sop_uid
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.Modality == f.modality
        assert ds.StudyDate == f.study_date
        assert ds.pixel_array.size > 0


def test_uids_are_valid_and_unique_across_the_corpus(files: list[CorpusFile]) -> None:
    studies = {f.study_uid for f in files if f.valid}
    series = {f.series_uid for f in files if f.valid}
    sops = [f.sop_uid for f in files if f.valid]
    assert len(studies) == SPEC.studies
    assert len(series) == SPEC.studies * SPEC.series_per_study
    assert len(set(sops)) == len(sops) == SPEC.instances
    everything = [*studies, *series, *sops]
    assert len(set(everything)) == len(everything)
    for uid in everything:
        assert uid is not None and is_valid_uid(uid) and len(uid) <= 64


def test_hierarchy_is_consistent(files: list[CorpusFile]) -> None:
    series_of_study: dict[str, set[str]] = defaultdict(set)
    numbers: dict[str, list[int]] = defaultdict(list)
    study_attrs: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    series_numbers: dict[str, set[int]] = defaultdict(set)
    for f in files:
        if not f.valid:
            continue
        assert f.study_uid and f.series_uid
        ds = read(f.data)
        series_of_study[f.study_uid].add(f.series_uid)
        numbers[f.series_uid].append(int(ds.InstanceNumber))
        series_numbers[f.study_uid].add(int(ds.SeriesNumber))
        study_attrs[f.study_uid].add(
            (
                str(ds.PatientID),
                str(ds.PatientName),
                ds.PatientBirthDate,
                ds.PatientSex,
                ds.StudyDate,
                ds.StudyTime,
                ds.AccessionNumber,
                ds.StudyDescription,
                ds.Modality,
            )
        )
    assert all(len(s) == SPEC.series_per_study for s in series_of_study.values())
    assert all(sorted(n) == [1, 2, 3, 4] for n in numbers.values())
    assert all(n == {1, 2, 3} for n in series_numbers.values())
    assert all(len(a) == 1 for a in study_attrs.values()), "a study's attributes must agree"


def test_patient_and_study_attributes_are_plausible(files: list[CorpusFile]) -> None:
    modalities = {t.modality for t in load_templates()}
    for f in files:
        if not f.valid:
            continue
        ds = read(f.data)
        assert str(ds.PatientID).startswith("MRN") and len(str(ds.PatientID)) == 12
        assert ds.PatientName.family_name and ds.PatientName.given_name
        assert ds.PatientSex in ("M", "F", "O")
        assert len(ds.PatientBirthDate) == 8 and ds.PatientBirthDate <= ds.StudyDate
        assert "2005" <= ds.StudyDate[:4] <= "2024"
        assert len(ds.StudyTime) == 6 and ds.AccessionNumber and ds.StudyDescription
        assert ds.Modality in modalities and ds.SeriesDescription
        assert str(ds.PatientAge).endswith(("Y", "M"))
        assert "OtherPatientIDsSequence" not in ds
        assert ds.preamble == b"\0" * 128


def test_names_follow_the_pacs_layout(files: list[CorpusFile]) -> None:
    sites = set()
    for f in files:
        m = NAME_PATTERN.fullmatch(f.name)
        assert m, f.name
        sites.add(m["site"])
        assert is_valid_uid(m["file"])
        if f.valid:
            assert (m["study"], m["series"], m["file"]) == (f.study_uid, f.series_uid, f.sop_uid)
            assert f.study_date == f"{m['year']}{m['month']}" + f.study_date[6:]
    assert sites <= {"site-a", "site-b", "site-c"}


def test_bad_files_fail_to_read_and_sit_among_the_instances(files: list[CorpusFile]) -> None:
    series_dirs = {f.name.rsplit("/", 1)[0] for f in files if f.valid}
    bad = [f for f in files if not f.valid]
    for f in bad:
        assert f.name.rsplit("/", 1)[0] in series_dirs, "bad files live in series directories"
        assert f.study_uid is f.series_uid is f.sop_uid is None
        if f.kind is FileKind.EMPTY:
            assert f.data == b""
            continue
        with pytest.raises(Exception):  # noqa: B017 - pydicom raises several types
            read(f.data)
    truncated = [f for f in bad if f.kind is FileKind.TRUNCATED]
    assert all(f.data[128:132] == b"DICM" for f in truncated), "truncated files start as DICOM"
    text = [f for f in bad if f.kind is FileKind.TEXT]
    for f in text:
        assert f.data and all(c.isprintable() or c in "\r\n" for c in f.data.decode("ascii"))


def test_bad_files_are_spread_over_the_tree() -> None:
    spec = CorpusSpec(studies=20, series_per_study=2, instances_per_series=5, bad_files=40, seed=3)
    dirs = {f.name.rsplit("/", 1)[0] for f in iter_corpus(spec) if not f.valid}
    assert len(dirs) >= 10


def test_same_seed_same_bytes_other_seed_other_uids() -> None:
    spec = CorpusSpec(studies=3, series_per_study=2, instances_per_series=3, bad_files=4, seed=5)
    first = [(f.name, f.data) for f in iter_corpus(spec)]
    again = [(f.name, f.data) for f in iter_corpus(spec)]
    other = [(f.name, f.data) for f in iter_corpus(spec.model_copy(update={"seed": 6}))]
    assert first == again
    assert not {n for n, _ in first} & {n for n, _ in other}


def test_bad_file_count_does_not_change_the_instances() -> None:
    base = CorpusSpec(studies=3, series_per_study=2, instances_per_series=3, seed=9)
    plain = [(f.name, f.data) for f in iter_corpus(base)]
    with_bad = iter_corpus(base.model_copy(update={"bad_files": 7}))
    assert [(f.name, f.data) for f in with_bad if f.valid] == plain


def test_no_seed_means_a_fresh_corpus() -> None:
    spec = CorpusSpec(studies=1)
    assert next(iter_corpus(spec)).name != next(iter_corpus(spec)).name
    assert spec.resolved().seed is not None


@settings(max_examples=25, deadline=None)
@given(
    studies=st.integers(1, 3),
    series=st.integers(1, 3),
    instances=st.integers(1, 4),
    bad=st.integers(0, 8),
    sites=st.integers(1, 30),
    seed=st.integers(0, 2**63),
)
def test_any_small_spec_yields_what_it_says(
    studies: int, series: int, instances: int, bad: int, sites: int, seed: int
) -> None:
    spec = CorpusSpec(
        studies=studies,
        series_per_study=series,
        instances_per_series=instances,
        bad_files=bad,
        sites=sites,
        seed=seed,
    )
    files = list(iter_corpus(spec))
    assert len(files) == spec.files
    assert sum(not f.valid for f in files) == bad
    assert len({f.name for f in files}) == len(files)
    for f in files:
        assert NAME_PATTERN.fullmatch(f.name)
        if f.valid:
            assert read(f.data).SOPInstanceUID == f.sop_uid
        elif f.data:
            with pytest.raises(Exception):  # noqa: B017
                read(f.data)
