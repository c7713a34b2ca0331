"""Plausible, entirely synthetic patient, study, series and instance attributes.

Values are drawn from seeded RNGs and sized to fit the template slots (see templates.py).
A patient is derived from (seed, patient number) alone, so a patient seen in several studies
keeps the same name, ID, birth date, sex and home site without keeping any table in memory.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from bulkmover.corpus.templates import Template
from bulkmover.corpus.uids import new_uid

_FAMILY = (
    "ANDERSEN BAKER CHEN DUBOIS EVANS FISCHER GARCIA HANSEN IVANOVA JOHNSON KOWALSKI LAURENT "
    "MARTIN NGUYEN OKAFOR PATEL QUINN ROSSI SILVA TANAKA USMAN VARGA WEBER XU YILMAZ ZIELINSKI "
    "MORENO LINDQVIST OBRIEN HALVORSEN"
).split()
_GIVEN_F = (
    "ANNA BEATRIZ CHLOE DANA ELENA FATIMA GRACE HANNA INGRID JULIA KEIKO LEA MARIA NORA".split()
)
_GIVEN_M = (
    "ADAM BRUNO CARLOS DAVID EMIL FELIX GEORG HUGO IVAN JONAS KENJI LUCAS MARTIN OMAR".split()
)
_CITIES = (
    "ASHFORD BRIGHTON CAMDEN DOVER EASTWOOD FAIRVIEW GLENWOOD HARBOR IRVING JASPER KINGSTON "
    "LAKESIDE MILFORD NEWPORT OAKDALE PRESTON QUINCY RIVERSIDE SALEM TRENTON UNION VALLEY "
    "WESTFIELD YORK ZION ALDEN"
).split()

#: Study and series descriptions by modality (what a radiology PACS typically shows).
_STUDY_DESCRIPTIONS = {
    "CT": ("CT CHEST WITH CONTRAST", "CT ABDOMEN PELVIS", "CT HEAD WO CONTRAST", "CT ANGIO CHEST"),
    "MR": ("MR BRAIN WWO CONTRAST", "MR KNEE LEFT", "MR LUMBAR SPINE", "MR SHOULDER RIGHT"),
    "OT": ("OUTSIDE IMAGES", "SCANNED DOCUMENTS", "KEY IMAGES"),
    "RTDOSE": ("RT PLANNING", "RT DOSE VERIFICATION"),
}
_SERIES_DESCRIPTIONS = {
    "CT": ("SCOUT", "AXIAL 5MM", "AXIAL 1.25MM", "CORONAL MPR", "SAGITTAL MPR", "ARTERIAL"),
    "MR": ("LOCALIZER", "T1 SAG", "T2 AX", "FLAIR AX", "DWI", "T1 POST AX", "T2 COR"),
    "OT": ("SECONDARY CAPTURE", "SCREEN CAPTURE", "DOCUMENT"),
    "RTDOSE": ("RT DOSE PLAN", "RT DOSE BEAM"),
}

_FIRST_STUDY_DAY = dt.date(2005, 1, 1)
_LAST_STUDY_DAY = dt.date(2024, 12, 31)
_FIRST_BIRTH_DAY = dt.date(1930, 1, 1)
_LAST_BIRTH_DAY = dt.date(2015, 12, 31)


def site_name(index: int) -> str:
    """``site-a`` ... ``site-z``, ``site-aa`` ... (bijective base 26)."""
    letters = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return f"site-{letters}"


def institution_name(index: int) -> str:
    city = _CITIES[index % len(_CITIES)]
    suffix = f" {index // len(_CITIES) + 1}" if index >= len(_CITIES) else ""
    return f"{city} MEDICAL CENTER{suffix}"


@dataclass(frozen=True, slots=True)
class Patient:
    patient_id: str
    name: str
    birth_date: dt.date
    sex: str
    site: int


def make_patient(seed: int, number: int, sites: int) -> Patient:
    """The patient ``number`` of the corpus with ``seed``: always the same person."""
    rng = random.Random(f"bulkmover-corpus/{seed}/patient/{number}")
    sex = rng.choice("FFMMO")
    given = rng.choice(_GIVEN_M if sex == "M" else _GIVEN_F)
    name = f"{rng.choice(_FAMILY)}^{given}^{chr(ord('A') + rng.randrange(26))}"
    return Patient(
        patient_id=f"MRN{rng.randrange(10**9):09d}",
        name=name,
        birth_date=_day_between(rng, _FIRST_BIRTH_DAY, _LAST_BIRTH_DAY),
        sex=sex,
        site=rng.randrange(sites),
    )


@dataclass(frozen=True, slots=True)
class Study:
    uid: str
    date: str
    seconds: int  # StudyTime as seconds since midnight
    site: int
    values: dict[str, str]


def make_study(rng: random.Random, patient: Patient, template: Template) -> Study:
    """A study of ``patient`` made from ``template``; ``values`` fill the study-level slots."""
    day = _day_between(rng, max(_FIRST_STUDY_DAY, patient.birth_date), _LAST_STUDY_DAY)
    seconds = rng.randrange(7 * 3600, 20 * 3600)
    uid = new_uid(rng)
    date = day.strftime("%Y%m%d")
    referring = f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN_F + _GIVEN_M)}^^DR"
    values = {
        "StudyInstanceUID": uid,
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "PatientBirthDate": patient.birth_date.strftime("%Y%m%d"),
        "PatientSex": patient.sex,
        "PatientAge": _age(patient.birth_date, day),
        "StudyDate": date,
        "StudyTime": _time(seconds),
        "AccessionNumber": f"A{rng.randrange(10**11):011d}",
        "StudyID": f"{rng.randrange(10**8):08d}",
        "StudyDescription": rng.choice(_STUDY_DESCRIPTIONS.get(template.modality, ("IMAGING",))),
        "ReferringPhysicianName": referring,
        "InstitutionName": institution_name(patient.site),
        "SeriesDate": date,
        "ContentDate": date,
        "AcquisitionDate": date,
        "InstanceCreationDate": date,
    }
    return Study(uid=uid, date=date, seconds=seconds, site=patient.site, values=values)


@dataclass(frozen=True, slots=True)
class Series:
    uid: str
    seconds: int
    values: dict[str, str]


def make_series(rng: random.Random, study: Study, number: int, modality: str) -> Series:
    """Series ``number`` (1-based) of ``study``; series start a few minutes apart."""
    uid = new_uid(rng)
    seconds = study.seconds + (number - 1) * 180 + rng.randrange(60)
    descriptions = _SERIES_DESCRIPTIONS.get(modality, ("SERIES",))
    values = {
        "SeriesInstanceUID": uid,
        "SeriesNumber": str(number),
        "SeriesDescription": descriptions[(number - 1) % len(descriptions)],
        "SeriesTime": _time(seconds),
        "FrameOfReferenceUID": new_uid(rng),
    }
    return Series(uid=uid, seconds=seconds, values=values)


def instance_values(series: Series, sop_uid: str, number: int) -> dict[str, str]:
    """Instance-level slot values; one image per second within a series."""
    when = _time(series.seconds + number)
    return {
        "SOPInstanceUID": sop_uid,
        "InstanceNumber": str(number),
        "ContentTime": when,
        "AcquisitionTime": when,
        "InstanceCreationTime": when,
    }


def _day_between(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def _time(seconds: int) -> str:
    seconds = min(seconds, 86399)
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def _age(birth: dt.date, on: dt.date) -> str:
    """DICOM AS: years, or months below one year."""
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    return f"{months // 12:03d}Y" if months >= 12 else f"{max(months, 0):03d}M"
