"""Where a corpus goes: ``gs://BUCKET[/PREFIX]`` or a local directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bulkmover.errors import UsageError

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class GcsDestination:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket root

    def object_name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"


@dataclass(frozen=True, slots=True)
class LocalDestination:
    root: Path

    def object_name(self, name: str) -> str:
        return name

    def __str__(self) -> str:
        return str(self.root)


Destination = GcsDestination | LocalDestination


def parse_destination(dest: str) -> Destination:
    """Parse DEST; raise UsageError with the fix when it cannot be one."""
    if dest.startswith("gs://"):
        bucket, _, prefix = dest[len("gs://") :].partition("/")
        if not _valid_bucket(bucket):
            raise UsageError(
                f"invalid bucket name {bucket!r} in {dest!r}: use gs://BUCKET/PREFIX with a "
                "bucket of 3-63 lowercase letters, digits, '-', '_' or '.'"
            )
        prefix = prefix.strip("/")
        if "//" in prefix:
            raise UsageError(f"empty path segment in {dest!r}: remove the doubled '/'")
        return GcsDestination(bucket, prefix)
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", dest):
        raise UsageError(
            f"unsupported destination {dest!r}: use gs://BUCKET/PREFIX or a local directory"
        )
    if not dest:
        raise UsageError("empty destination: use gs://BUCKET/PREFIX or a local directory")
    root = Path(dest)
    if root.exists() and not root.is_dir():
        raise UsageError(f"destination {dest!r} is a file: give a directory or gs://BUCKET/PREFIX")
    return LocalDestination(root)


def _valid_bucket(name: str) -> bool:
    if not _BUCKET_RE.fullmatch(name) or ".." in name:
        return False
    return len(name) <= 63 or ("." in name and all(len(p) <= 63 for p in name.split(".")))
