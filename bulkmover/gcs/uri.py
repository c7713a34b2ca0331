"""``gs://`` URIs: a literal bucket and an object part, checked against Cloud Storage naming rules.

Parsing happens once, where a URI enters (config, CLI); everything downstream holds a ``GcsUri``.

>>> parse_gcs_uri("gs://pacs-dump/site-a/**.dcm")
GcsUri(bucket='pacs-dump', name='site-a/**.dcm')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bulkmover.errors import PlanError

SCHEME = "gs://"
MAX_NAME_BYTES = 1024

_BUCKET_PART = re.compile(r"[a-z0-9](?:[a-z0-9_\-]*[a-z0-9])?")
_IP_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


class InvalidUriError(PlanError):
    """A ``gs://`` URI (or wildcard in it) that Cloud Storage or the Healthcare API would refuse."""


@dataclass(frozen=True, slots=True)
class GcsUri:
    """A bucket and an object name (or an object pattern, see ``bulkmover.gcs.wildcard``)."""

    bucket: str
    name: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.name}"


def parse_gcs_uri(text: str) -> GcsUri:
    """Split ``gs://BUCKET/NAME``; InvalidUriError with the reason and a fix otherwise."""
    if not text.startswith(SCHEME):
        raise InvalidUriError(
            f"{text!r} is not a Cloud Storage URI; write it as gs://BUCKET/PATH, e.g."
            " gs://pacs-dump/site-a/**.dcm"
        )
    bucket, slash, name = text[len(SCHEME) :].partition("/")
    check_bucket_name(bucket, text)
    if not slash or not name:
        raise InvalidUriError(
            f"{text!r} names a bucket but no objects; add a path or wildcard, e.g."
            f" gs://{bucket}/**.dcm"
        )
    check_object_name(name, text)
    return GcsUri(bucket, name)


def check_bucket_name(bucket: str, uri: str) -> None:
    """Cloud Storage bucket naming rules; the bucket part of an import URI is never a wildcard."""
    if "*" in bucket or "?" in bucket:
        raise InvalidUriError(
            f"{uri!r}: the bucket name must be literal (wildcards are allowed only after"
            " gs://BUCKET/)"
        )
    parts = bucket.split(".")
    valid = (
        3 <= len(bucket) <= 222
        and all(_BUCKET_PART.fullmatch(p) and len(p) <= 63 for p in parts)
        and not _IP_ADDRESS.fullmatch(bucket)
    )
    if not valid:
        raise InvalidUriError(
            f"{uri!r}: {bucket!r} is not a valid bucket name; bucket names are 3-63 lowercase"
            " letters, digits, '-' and '_' (dots separate parts of longer names), starting and"
            " ending with a letter or digit"
        )


def check_object_name(name: str, uri: str) -> None:
    """Object names: at most 1024 bytes of UTF-8, no carriage return or line feed."""
    if "\r" in name or "\n" in name:
        raise InvalidUriError(f"{uri!r}: object names cannot contain line breaks")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidUriError(
            f"{uri[:80]!r}...: the object part is longer than {MAX_NAME_BYTES} bytes"
        )
