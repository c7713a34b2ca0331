"""The typed shapes that cross the corpus package boundary: what to generate, what came out."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

#: Largest SeriesNumber / InstanceNumber the fixed-width slots of a template can hold.
MAX_SERIES_PER_STUDY = 99_999
MAX_INSTANCES_PER_SERIES = 9_999_999


class FileKind(StrEnum):
    """What a generated file holds; everything but ``DICOM`` must fail an import."""

    DICOM = "dicom"
    TEXT = "text"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    RANDOM = "random"


class CorpusSpec(BaseModel):
    """How big a synthetic PACS dump to make, and from which seed.

    The same spec with the same ``seed`` always yields the same names and bytes. ``seed=None``
    means a fresh random seed: call :meth:`resolved` first when the seed must be reported.

    Example::

        CorpusSpec(studies=10, series_per_study=3, instances_per_series=20, bad_files=5, seed=7)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    studies: int = Field(ge=1)
    series_per_study: int = Field(default=1, ge=1, le=MAX_SERIES_PER_STUDY)
    instances_per_series: int = Field(default=1, ge=1, le=MAX_INSTANCES_PER_SERIES)
    bad_files: int = Field(default=0, ge=0)
    seed: int | None = Field(default=None, ge=0)
    sites: int = Field(default=1, ge=1, le=702)

    @property
    def instances(self) -> int:
        """Number of valid DICOM instances the spec yields."""
        return self.studies * self.series_per_study * self.instances_per_series

    @property
    def files(self) -> int:
        """Number of files (instances and bad files) the spec yields."""
        return self.instances + self.bad_files

    def resolved(self) -> CorpusSpec:
        """This spec with a concrete seed (a fresh random one when none was given)."""
        if self.seed is not None:
            return self
        return self.model_copy(update={"seed": secrets.randbits(63)})


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """One generated file. ``name`` is relative to the destination prefix.

    UIDs, modality and study date are those written inside a valid instance; ``None`` for bad
    files (whose content must not be trusted to carry any).
    """

    name: str
    data: bytes
    kind: FileKind
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    modality: str | None = None
    study_date: str | None = None

    @property
    def valid(self) -> bool:
        return self.kind is FileKind.DICOM

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class CorpusSummary:
    """What a :func:`write_corpus` run put where, and how long it took."""

    destination: str
    seed: int
    instances: int
    bad_files: int
    bytes: int
    seconds: float
    manifest: str | None = None

    @property
    def files(self) -> int:
        return self.instances + self.bad_files

    def line(self) -> str:
        """The one summary line the CLI prints."""
        rate = self.files / self.seconds if self.seconds > 0 else 0.0
        return (
            f"corpus: {self.instances} instances, {self.bad_files} bad files, "
            f"{self.bytes} bytes ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s "
            f"({rate:.0f} files/s) "
            f"-> {self.destination} (seed {self.seed})"
        )
