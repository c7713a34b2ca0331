"""Resource names and identifiers: what the API accepts in IDs, UIDs and ``gs://`` URIs.

>>> StoreName("p", "l", "d", "s").path
'projects/p/locations/l/datasets/d/dicomStores/s'
>>> is_uid("1.2.840.10008.1.2.1"), is_uid("1.2.x")
(True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bulkmover.emulator.healthcare.rpc import invalid

_RESOURCE_ID = re.compile(r"[\w.\-]{1,256}")
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]")


def check_resource_id(kind: str, value: str | None) -> str:
    """A dataset or store id: 1-256 letters, digits, '_', '-', '.' (400 otherwise)."""
    if not value:
        raise invalid(f"missing {kind}: pass ?{kind}=NAME in the URL")
    if not _RESOURCE_ID.fullmatch(value):
        raise invalid(f"invalid {kind} {value!r}: use 1 to 256 letters, digits, '_', '-' or '.'")
    return value


def is_uid(value: str) -> bool:
    """A DICOM UID: digits and dots, at most 64 characters."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def check_uid(kind: str, value: str) -> str:
    if not is_uid(value):
        raise invalid(
            f"invalid {kind} {value!r} in the path: a DICOM UID is digits and dots, "
            f"at most 64 characters"
        )
    return value


@dataclass(frozen=True)
class DatasetName:
    project: str
    location: str
    dataset: str

    @property
    def path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/datasets/{self.dataset}"


@dataclass(frozen=True)
class StoreName:
    project: str
    location: str
    dataset: str
    store: str

    @property
    def dataset_name(self) -> DatasetName:
        return DatasetName(self.project, self.location, self.dataset)

    @property
    def path(self) -> str:
        return f"{self.dataset_name.path}/dicomStores/{self.store}"


@dataclass(frozen=True)
class GcsUri:
    """``gs://bucket/object``; the object part may be empty (a bucket) when allowed."""

    bucket: str
    object: str

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.object}"


def parse_gcs_uri(uri: object, field: str, *, allow_empty_object: bool = False) -> GcsUri:
    """Split a ``gs://`` URI of request field ``field``, or raise INVALID_ARGUMENT."""
    if not isinstance(uri, str) or not uri:
        raise invalid(f"{field} is required: give a gs://BUCKET/PATH URI")
    if not uri.startswith("gs://"):
        raise invalid(f"{field} {uri!r} must start with gs://")
    bucket, _, obj = uri[len("gs://") :].partition("/")
    if "*" in bucket or "?" in bucket:
        raise invalid(
            f"{field} {uri!r}: wildcards are allowed only in the object part, not in the bucket"
        )
    if not _BUCKET.fullmatch(bucket):
        raise invalid(
            f"{field} {uri!r} has an invalid bucket name {bucket!r}: 3 to 222 lower-case "
            f"letters, digits, '-', '_' or '.'"
        )
    if not obj and not allow_empty_object:
        raise invalid(f"{field} {uri!r} names no object: give gs://{bucket}/PATH")
    return GcsUri(bucket, obj)
