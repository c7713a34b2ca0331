"""Synthetic PACS dumps: real DICOM files re-identified from pydicom's samples, plus bad files.

Example::

    from bulkmover.corpus import CorpusSpec, iter_corpus, write_corpus

    spec = CorpusSpec(studies=10, series_per_study=2, instances_per_series=5, bad_files=3, seed=1)
    for f in iter_corpus(spec):          # no I/O: names, bytes, kinds, UIDs
        ...
    summary = await write_corpus("gs://bucket/prefix", spec, manifest="truth.jsonl")
"""

from bulkmover.corpus.generate import iter_corpus
from bulkmover.corpus.layout import NAME_PATTERN
from bulkmover.corpus.manifest import read_manifest
from bulkmover.corpus.progress import WriteCounters
from bulkmover.corpus.spec import CorpusFile, CorpusSpec, CorpusSummary, FileKind
from bulkmover.corpus.uids import is_valid_uid
from bulkmover.corpus.writer import write_corpus

__all__ = [
    "NAME_PATTERN",
    "CorpusFile",
    "CorpusSpec",
    "CorpusSummary",
    "FileKind",
    "WriteCounters",
    "is_valid_uid",
    "iter_corpus",
    "read_manifest",
    "write_corpus",
]
