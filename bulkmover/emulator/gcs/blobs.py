"""Content-addressed object bytes: one file per distinct content, named by its SHA-256.

Identical contents (a million synthetic objects of one size, the same DICOM uploaded twice) are
stored once. A blob is written to ``tmp/`` while it is hashed, then renamed into ``blobs/`` by the
index's writer just before the row that references it is committed, so an object visible in the
index always has its bytes on disk; a crash in between leaves at most an unreferenced file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import google_crc32c


@dataclass(frozen=True)
class Digest:
    """What the index keeps about a blob: its address and the checksums GCS reports."""

    sha256: str
    size: int
    md5: str
    crc32c: str


class Hasher:
    """MD5, CRC32C and SHA-256 of a byte stream, updated chunk by chunk."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5()
        self._sha = hashlib.sha256()
        self._crc = 0
        self.size = 0

    def update(self, data: bytes) -> None:
        self._md5.update(data)
        self._sha.update(data)
        self._crc = google_crc32c.extend(self._crc, data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(
            sha256=self._sha.hexdigest(),
            size=self.size,
            md5=base64.b64encode(self._md5.digest()).decode(),
            crc32c=base64.b64encode(self._crc.to_bytes(4, "big")).decode(),
        )


class BlobWriter:
    """A temporary file that hashes what is written to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by finish/abort
        self._hasher = Hasher()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hasher.update(data)

    @property
    def size(self) -> int:
        return self._hasher.size

    def finish(self) -> Digest:
        self._file.close()
        return self._hasher.digest()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    """The ``blobs/`` and ``tmp/`` directories of a data dir."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256[2:4] / sha256

    def temp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def writer(self) -> BlobWriter:
        return BlobWriter(self.temp_path())

    def write_bytes(self, data: bytes) -> tuple[Path, Digest]:
        """Write ``data`` to a temporary file; adopt it with :meth:`adopt`."""
        writer = self.writer()
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        return writer.path, writer.finish()

    def hash_file(self, path: Path, chunk: int = 1 << 20) -> Digest:
        hasher = Hasher()
        with open(path, "rb") as f:
            while data := f.read(chunk):
                hasher.update(data)
        return hasher.digest()

    def adopt(self, temp: Path, digest: Digest) -> None:
        """Move a finished temporary file to its address (identical content: same file)."""
        final = self.path(digest.sha256)
        if final.exists() and final.stat().st_size == digest.size:
            temp.unlink(missing_ok=True)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)

    def discard(self, temp: Path) -> None:
        temp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")
