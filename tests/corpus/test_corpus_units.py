"""Pure parts of the corpus package: UIDs, site names, templates, destinations, spec checks."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bulkmover.corpus import CorpusSpec, is_valid_uid
from bulkmover.corpus.attributes import _age, site_name
from bulkmover.corpus.command import make_spec
from bulkmover.corpus.destination import GcsDestination, LocalDestination, parse_destination
from bulkmover.corpus.templates import ALL_SLOTS, CORE_SLOTS, load_templates
from bulkmover.corpus.uids import UID_LENGTH, new_uid
from bulkmover.errors import UsageError


@given(st.integers(0, 2**64))
def test_new_uids_are_valid_uuid_uids_of_fixed_length(seed: int) -> None:
    uid = new_uid(random.Random(seed))
    assert len(uid) == UID_LENGTH and is_valid_uid(uid)
    assert uid.startswith("2.25.") and int(uid[5:]) < 2**128


@pytest.mark.parametrize(
    ("uid", "ok"),
    [
        ("1.2.840.10008.1.2.1", True),
        ("2.25.0", True),
        ("2.25.01", False),  # leading zero in a component
        ("1..2", False),
        ("1.2.", False),
        ("1", False),
        ("1.2a", False),
        ("1." + "2" * 63, False),  # 65 characters
    ],
)
def test_uid_validity_rules(uid: str, ok: bool) -> None:
    assert is_valid_uid(uid) is ok


def test_site_names_are_bijective_base_26() -> None:
    names = [site_name(i) for i in range(702)]
    assert names[:3] == ["site-a", "site-b", "site-c"]
    assert names[25:28] == ["site-z", "site-aa", "site-ab"]
    assert names[-1] == "site-zz"
    assert len(set(names)) == 702


def test_age_is_years_or_months() -> None:
    import datetime as dt

    assert _age(dt.date(1980, 6, 15), dt.date(2020, 6, 14)) == "039Y"
    assert _age(dt.date(1980, 6, 15), dt.date(2020, 6, 15)) == "040Y"
    assert _age(dt.date(2020, 1, 20), dt.date(2020, 4, 1)) == "002M"


def test_templates_are_uncompressed_images_with_every_core_slot() -> None:
    templates = load_templates()
    assert {t.modality for t in templates} >= {"CT", "MR", "OT"}
    for t in templates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(t.data))
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert ds.pixel_array.size > 0
        assert set(CORE_SLOTS) <= set(t.slots) <= set(ALL_SLOTS)
        assert len(t.slots["SOPInstanceUID"]) == 2  # file meta and dataset


def test_fill_rewrites_only_the_given_elements() -> None:
    t = load_templates()[0]
    data = bytes(t.fill(t.data, {"PatientName": "DOE^JANE", "InstanceNumber": "42"}))
    assert len(data) == len(t.data)
    ds = pydicom.dcmread(io.BytesIO(data))
    before = pydicom.dcmread(io.BytesIO(t.data))
    assert (str(ds.PatientName), ds.InstanceNumber) == ("DOE^JANE", 42)
    assert ds.StudyInstanceUID == before.StudyInstanceUID
    assert ds.Rows == before.Rows and ds.PixelData == before.PixelData
    with pytest.raises(ValueError, match="exceeds"):
        t.fill(t.data, {"StudyDate": "2020010101"})


@pytest.mark.parametrize(
    ("dest", "bucket", "prefix"),
    [
        ("gs://pacs-dump", "pacs-dump", ""),
        ("gs://pacs-dump/", "pacs-dump", ""),
        ("gs://pacs-dump/2024/q1/", "pacs-dump", "2024/q1"),
        ("gs://my.bucket_1/x", "my.bucket_1", "x"),
    ],
)
def test_gcs_destinations(dest: str, bucket: str, prefix: str) -> None:
    parsed = parse_destination(dest)
    assert parsed == GcsDestination(bucket, prefix)
    assert parsed.object_name("a/b.dcm") == (f"{prefix}/a/b.dcm" if prefix else "a/b.dcm")


@pytest.mark.parametrize(
    "dest", ["gs://", "gs://UPPER/x", "gs://ab", "gs://-bad/x", "gs://b..b/x", "s3://b/x", ""]
)
def test_bad_destinations_are_usage_errors(dest: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_destination(dest)
    assert "\n" not in str(err.value)


def test_local_destination_must_not_be_a_file(tmp_path: Path) -> None:
    assert parse_destination(str(tmp_path / "new")) == LocalDestination(tmp_path / "new")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        parse_destination(str(tmp_path / "f"))


def test_spec_limits_and_flag_named_errors() -> None:
    with pytest.raises(ValidationError):
        CorpusSpec(studies=0)
    with pytest.raises(UsageError, match=r"^--bad-files: .*greater than or equal to 0 \(got -1\)"):
        make_spec(studies=1, bad_files=-1)
    with pytest.raises(UsageError, match="^--series-per-study"):
        make_spec(studies=1, series_per_study=10**6)
    spec = make_spec(studies=2, series_per_study=3, instances_per_series=4, bad_files=5)
    assert (spec.instances, spec.files) == (24, 29)


def test_progress_view_reads_the_counters() -> None:
    from rich.console import Console

    from bulkmover.corpus import WriteCounters
    from bulkmover.corpus.progress import ProgressView
    from bulkmover.corpus.spec import CorpusFile, FileKind

    counters = WriteCounters(files_total=10)
    counters.landed(CorpusFile(name="a.dcm", data=b"x" * 1500, kind=FileKind.DICOM))
    counters.landed(CorpusFile(name="b.dcm", data=b"", kind=FileKind.EMPTY))
    console = Console(record=True, width=120, color_system=None)
    console.print(ProgressView(counters))
    text = console.export_text()
    assert "2/10 files" in text and "1.5 kB" in text and "files/s" in text
    assert (counters.instances_done, counters.bad_done) == (1, 1)
