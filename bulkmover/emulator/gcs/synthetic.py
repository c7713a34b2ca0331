"""Synthetic object contents for the bulk path: deterministic bytes that depend only on the size.

Object ``n`` of a bulk load given ``{"size": N}`` holds ``synthetic_content(N)``; every object of
one size shares one blob, so a million objects cost a few files. Anyone can recompute the bytes
to check a download.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from bulkmover.emulator.gcs.blobs import BlobStore, Digest, Hasher

CHUNK = 1 << 20
MAX_SYNTHETIC_SIZE = 1 << 32
MAX_CACHED_DIGESTS = 4096


def iter_synthetic(size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The synthetic content of ``size`` bytes, in chunks of at most ``chunk`` (1 MiB)."""
    index = 0
    remaining = size
    while remaining > 0:
        n = min(CHUNK, remaining)
        block = hashlib.shake_256(b"bulkmover synthetic %d:%d" % (size, index)).digest(n)
        for start in range(0, n, chunk):
            yield block[start : start + chunk]
        remaining -= n
        index += 1


def synthetic_content(size: int) -> bytes:
    """All ``size`` bytes at once (for small sizes and for checking downloads)."""
    return b"".join(iter_synthetic(size))


class SyntheticBlobs:
    """Digests of synthetic contents, computed once per size; files written only when needed."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._digests: dict[int, Digest] = {}

    def digest(self, size: int) -> Digest:
        found = self._digests.get(size)
        if found is None:
            hasher = Hasher()
            for block in iter_synthetic(size):
                hasher.update(block)
            if len(self._digests) >= MAX_CACHED_DIGESTS:
                del self._digests[next(iter(self._digests))]
            found = self._digests[size] = hasher.digest()
        return found

    def write_temp(self, size: int) -> Path:
        """Write the content of ``size`` to a temporary blob file (on the writer thread)."""
        writer = self._blobs.writer()
        try:
            for block in iter_synthetic(size):
                writer.write(block)
        except BaseException:
            writer.abort()
            raise
        writer.finish()
        return writer.path
