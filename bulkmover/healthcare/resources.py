"""Typed Healthcare API resource names: a dataset and a DICOM store.

Names are validated once, where they enter (config, CLI), so the client can build URLs from them
without quoting: every component is limited to the characters the API allows in IDs.

>>> store = StorePath.parse("projects/p/locations/us-central1/datasets/d/dicomStores/s")
>>> store.dataset.name
'projects/p/locations/us-central1/datasets/d'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from bulkmover.errors import ConfigError

_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}"
_DATASET_RE = re.compile(rf"projects/({_ID})/locations/({_ID})/datasets/({_ID})")
_STORE_RE = re.compile(rf"projects/({_ID})/locations/({_ID})/datasets/({_ID})/dicomStores/({_ID})")
_OPERATION_RE = re.compile(
    rf"(projects/{_ID}/locations/{_ID}/datasets/{_ID})/operations/([A-Za-z0-9_.\-]+)"
)


@dataclass(frozen=True, order=True)
class DatasetPath:
    """``projects/{project}/locations/{location}/datasets/{dataset}``."""

    project: str
    location: str
    dataset: str

    def __post_init__(self) -> None:
        if not _DATASET_RE.fullmatch(self.name):
            raise ConfigError(
                f"invalid Healthcare dataset name {self.name!r}: project, location and dataset IDs"
                " may use only letters, digits, '_', '.' and '-'"
            )

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/datasets/{self.dataset}"

    @classmethod
    def parse(cls, name: str) -> DatasetPath:
        match = _DATASET_RE.fullmatch(name.strip().strip("/"))
        if not match:
            raise ConfigError(
                f"invalid Healthcare dataset name {name!r}: expected"
                " projects/PROJECT/locations/LOCATION/datasets/DATASET"
            )
        return cls(*match.groups())

    def store(self, store_id: str) -> StorePath:
        return StorePath(self.project, self.location, self.dataset, store_id)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class StorePath:
    """``projects/{project}/locations/{location}/datasets/{dataset}/dicomStores/{store}``."""

    project: str
    location: str
    dataset_id: str
    store: str

    def __post_init__(self) -> None:
        if not _STORE_RE.fullmatch(self.name):
            raise ConfigError(
                f"invalid DICOM store name {self.name!r}: project, location, dataset and store IDs"
                " may use only letters, digits, '_', '.' and '-'"
            )

    @property
    def dataset(self) -> DatasetPath:
        return DatasetPath(self.project, self.location, self.dataset_id)

    @property
    def name(self) -> str:
        return (
            f"projects/{self.project}/locations/{self.location}"
            f"/datasets/{self.dataset_id}/dicomStores/{self.store}"
        )

    @classmethod
    def parse(cls, name: str) -> StorePath:
        match = _STORE_RE.fullmatch(name.strip().strip("/"))
        if not match:
            raise ConfigError(
                f"invalid DICOM store name {name!r}: expected"
                " projects/PROJECT/locations/LOCATION/datasets/DATASET/dicomStores/STORE"
            )
        return cls(*match.groups())

    def __str__(self) -> str:
        return self.name


def split_operation_name(name: str) -> tuple[DatasetPath, str]:
    """``projects/P/locations/L/datasets/D/operations/ID`` -> (dataset, ID).

    Raises ConfigError for anything else: operation names come from the state file or the API, so
    a bad one means the state file was edited or belongs to another tool.
    """
    match = _OPERATION_RE.fullmatch(name.strip())
    if not match:
        raise ConfigError(
            f"invalid operation name {name!r}: expected"
            " projects/PROJECT/locations/LOCATION/datasets/DATASET/operations/ID"
        )
    return DatasetPath.parse(match.group(1)), match.group(2)


class DatasetInfo(BaseModel):
    """What ``datasets.get`` returns that bulkmover uses."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    name: str
    time_zone: str | None = Field(default=None, alias="timeZone")


class DicomStoreInfo(BaseModel):
    """What ``dicomStores.get`` returns that bulkmover uses."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    name: str
    labels: dict[str, str] = {}
