"""The files a state file records as imported, read without changing the file.

``verify`` runs beside a live ``run`` (or long after it), so the state file is opened read-only
like ``status`` does; a file from before schema 4 has no outcomes to check and is refused rather
than upgraded.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from bulkmover.config import Config
from bulkmover.errors import StateError
from bulkmover.gcs.uri import parse_gcs_uri
from bulkmover.state.store import StateStore

OUTCOMES_SCHEMA = 4
"""The schema that added a per-file outcome (``objects.outcome``)."""

_IMPORTED = "FROM objects AS o WHERE o.outcome = 'imported'"
_FILES = (
    "SELECT s.uri, d.path || o.name FROM objects AS o"
    " JOIN directories AS d ON d.id = o.directory_id JOIN shards AS s ON s.id = o.shard_id"
    " WHERE o.outcome = 'imported' ORDER BY o.shard_id, o.directory_id, o.name"
)


@dataclass(frozen=True, slots=True)
class LedgerFile:
    """One imported file: its bucket (from its shard's URI) and full object name."""

    bucket: str
    name: str

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def open_ledger(config: Config) -> StateStore:
    """The config's state file, read-only, checked to hold a plan with outcomes for the config's
    DICOM store; StateError (one line) otherwise."""
    state = StateStore.open_readonly(config.state)
    try:
        version = state.schema_version
        if version < OUTCOMES_SCHEMA:
            raise StateError(
                f"state file {config.state} was written by an older bulkmover (schema {version},"
                f" file outcomes came with {OUTCOMES_SCHEMA}); run `bulkmover run CONFIG` once to"
                " upgrade it"
            )
        if state.latest_plan() is None:
            raise StateError(
                f"state file {config.state} holds no plan; run `bulkmover run CONFIG` first"
            )
        state.check_target(str(config.target.store_path))
    except BaseException:
        state.close()
        raise
    return state


class ImportedFiles:
    """The ``imported`` rows of a state file's ledger, in ledger order (shard, directory)."""

    def __init__(self, state: StateStore) -> None:
        self.conn = state.conn
        self._buckets: dict[str, str] = {}

    def count(self) -> int:
        return int(self._query(f"SELECT count(*) {_IMPORTED}").fetchone()[0])

    def all(self) -> Iterator[LedgerFile]:
        """Every imported file (streamed: a ledger may hold millions)."""
        for uri, name in self._query(_FILES):
            yield LedgerFile(self._bucket(uri), name)

    def sample(
        self, size: int, seed: int | None = None, total: int | None = None
    ) -> Iterator[LedgerFile]:
        """``size`` imported files chosen at random (all when fewer); the same ``seed`` over the
        same ledger picks the same files. ``total`` is ``count()`` when already known."""
        total = self.count() if total is None else total
        chosen = set(random.Random(seed).sample(range(total), min(size, total)))
        for index, item in enumerate(self.all()):
            if index in chosen:
                yield item

    def _bucket(self, uri: str) -> str:
        bucket = self._buckets.get(uri)
        if bucket is None:
            bucket = self._buckets[uri] = parse_gcs_uri(uri).bucket
        return bucket

    def _query(self, sql: str) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql)
        except sqlite3.Error as err:
            raise StateError(f"cannot read the ledger of the state file ({err})") from None
