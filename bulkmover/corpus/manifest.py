"""The ground truth of a corpus: JSON Lines, one object per file that landed.

Each line: ``{"name", "size", "valid", "kind", "study_uid", "series_uid", "sop_uid",
"modality", "study_date"}``; ``name`` is the object name in the bucket (prefix included) or the
path relative to a local destination; UIDs, modality and date are null for bad files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from bulkmover.corpus.spec import CorpusFile
from bulkmover.errors import UsageError


def manifest_record(name: str, f: CorpusFile) -> dict[str, Any]:
    return {
        "name": name,
        "size": f.size,
        "valid": f.valid,
        "kind": f.kind.value,
        "study_uid": f.study_uid,
        "series_uid": f.series_uid,
        "sop_uid": f.sop_uid,
        "modality": f.modality,
        "study_date": f.study_date,
    }


class ManifestWriter:
    """Appends one line per landed file to ``path`` (a no-op without a path)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fp: IO[str] | None = None

    def __enter__(self) -> Self:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fp = self.path.open("w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"cannot write manifest {self.path}: {exc.strerror}; pick another --manifest"
                ) from None
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fp is not None:
            self._fp.close()

    def write(self, name: str, f: CorpusFile) -> None:
        if self._fp is not None:
            self._fp.write(json.dumps(manifest_record(name, f), separators=(",", ":")) + "\n")


def read_manifest(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a manifest file, in file order."""
    with Path(path).open(encoding="utf-8") as fp:
        for line in fp:
            if line.strip():
                yield json.loads(line)
