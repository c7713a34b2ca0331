"""Typed rows of the index, and what a write needs: the data passed between store and API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmover.emulator.gcs.blobs import Digest
from bulkmover.emulator.gcs.errors import GcsApiError, condition_not_met


@dataclass(frozen=True, slots=True)
class BucketRow:
    id: int
    name: str
    created_us: int
    updated_us: int
    metageneration: int
    location: str
    storage_class: str


@dataclass(frozen=True, slots=True)
class ObjectRow:
    name: str
    generation: int
    metageneration: int
    content_type: str | None
    created_us: int
    updated_us: int
    extra: str | None
    sha256: str
    size: int
    md5: str
    crc32c: str

    def extra_fields(self) -> dict[str, Any]:
        """Optional resource fields (metadata, contentEncoding, ...) stored as JSON."""
        return dict(json.loads(self.extra)) if self.extra else {}


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: str
    bucket: str
    name: str
    content_type: str | None
    extra: str | None
    received: int
    created_us: int
    generation: int | None


@dataclass(frozen=True)
class Preconditions:
    """ifGenerationMatch and friends; 0 for ifGenerationMatch means "must not exist"."""

    if_generation_match: int | None = None
    if_generation_not_match: int | None = None
    if_metageneration_match: int | None = None
    if_metageneration_not_match: int | None = None

    def check(self, current: ObjectRow | None, *, read: bool = False) -> None:
        """Raise 412 (or 304 for a read's "not match" conditions) when a condition fails."""
        gen = current.generation if current else 0
        if self.if_generation_match is not None and gen != self.if_generation_match:
            raise condition_not_met()
        if self.if_generation_not_match is not None and gen == self.if_generation_not_match:
            raise not_modified() if read else condition_not_met()
        if self.if_metageneration_match is not None and (
            current is None or current.metageneration != self.if_metageneration_match
        ):
            raise condition_not_met()
        if (
            self.if_metageneration_not_match is not None
            and current is not None
            and current.metageneration == self.if_metageneration_not_match
        ):
            raise not_modified() if read else condition_not_met()


@dataclass(frozen=True, slots=True)
class NewObject:
    """An object to write and where its bytes are.

    ``temp`` is a finished temporary file; ``materialize`` writes one on demand when the blob is
    not stored yet (synthetic contents); with neither, the blob must already be stored.
    """

    name: str
    digest: Digest
    temp: Path | None = None
    content_type: str | None = None
    extra: str | None = None
    materialize: Callable[[], Path] | None = None


def not_modified() -> GcsApiError:
    return GcsApiError(304, "notModified", "Not Modified")


def now_us() -> int:
    return time.time_ns() // 1000
