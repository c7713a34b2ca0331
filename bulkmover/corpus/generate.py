"""The corpus as a stream of files, with no I/O: what a PACS dump of a given size holds.

Example::

    for f in iter_corpus(CorpusSpec(studies=2, series_per_study=2, instances_per_series=3, seed=1)):
        print(f.name, f.kind, len(f.data))

Three RNG streams derived from the seed keep the parts independent: the instances' UIDs and
attributes do not change when only the number of bad files does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from bulkmover.corpus.attributes import (
    instance_values,
    make_patient,
    make_series,
    make_study,
    site_name,
)
from bulkmover.corpus.badfiles import BAD_KINDS, bad_file
from bulkmover.corpus.layout import file_name, series_dir
from bulkmover.corpus.spec import CorpusFile, CorpusSpec, FileKind
from bulkmover.corpus.templates import Template, load_templates, truncation_template
from bulkmover.corpus.uids import new_uid


def _stream(seed: int, name: str) -> random.Random:
    return random.Random(f"bulkmover-corpus/{seed}/{name}")


def _bad_positions(spec: CorpusSpec, rng: random.Random) -> list[int]:
    """Before which instance (by index) each bad file goes, sorted: spread over the tree."""
    return sorted(rng.randrange(spec.instances) for _ in range(spec.bad_files))


def iter_corpus(spec: CorpusSpec) -> Iterator[CorpusFile]:
    """Yield every file of the corpus ``spec`` describes, study by study, series by series.

    Memory stays flat: one series image is held at a time. A ``seed`` of None draws a fresh one
    (use ``spec.resolved()`` first to know it).
    """
    spec = spec.resolved()
    assert spec.seed is not None
    seed = spec.seed
    rng = _stream(seed, "instances")
    bad_rng = _stream(seed, "bad")
    templates = load_templates()
    weights = [t.weight for t in templates]
    patients = max(1, spec.studies * 4 // 5)  # some patients have several studies

    bad_at = _bad_positions(spec, bad_rng)
    next_bad = 0
    index = 0
    for _ in range(spec.studies):
        template = rng.choices(templates, weights)[0]
        patient = make_patient(seed, rng.randrange(patients), spec.sites)
        study = make_study(rng, patient, template)
        study_image = template.fill(template.data, study.values)
        site = site_name(study.site)
        for series_number in range(1, spec.series_per_study + 1):
            series = make_series(rng, study, series_number, template.modality)
            series_image = bytes(template.fill(study_image, series.values))
            directory = series_dir(site, study.date, study.uid, series.uid)
            for number in range(1, spec.instances_per_series + 1):
                while next_bad < len(bad_at) and bad_at[next_bad] == index:
                    kind = BAD_KINDS[next_bad % len(BAD_KINDS)]
                    values = {**study.values, **series.values}
                    yield _bad(kind, bad_rng, template, values, directory)
                    next_bad += 1
                sop_uid = new_uid(rng)
                data = template.fill(series_image, instance_values(series, sop_uid, number))
                yield CorpusFile(
                    name=file_name(directory, sop_uid),
                    data=bytes(data),
                    kind=FileKind.DICOM,
                    study_uid=study.uid,
                    series_uid=series.uid,
                    sop_uid=sop_uid,
                    modality=template.modality,
                    study_date=study.date,
                )
                index += 1


def _bad(
    kind: FileKind,
    rng: random.Random,
    template: Template,
    values: dict[str, str],
    directory: str,
) -> CorpusFile:
    """A bad file named like an instance of the series being written (``values`` are the
    series' study- and series-level slot values, for a truncated copy of an instance)."""
    uid = new_uid(rng)
    instance = b""
    if kind is FileKind.TRUNCATED:
        template = truncation_template(template)
        instance = bytes(template.fill(template.data, {**values, "SOPInstanceUID": uid}))
    return CorpusFile(
        name=file_name(directory, uid), data=bad_file(kind, rng, instance, template), kind=kind
    )
