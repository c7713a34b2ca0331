"""The ordered index: buckets, objects and upload sessions in SQLite (WAL), bytes in blob files.

Objects live in a ``WITHOUT ROWID`` table keyed by ``(bucket_id, name)``, so a list page is one
range scan of the primary key, whatever the bucket size. One writer thread owns every change
(:meth:`Store.write`); readers use their own connection on the event loop and never block on it.

Blob reference counts are kept by triggers, so every path that adds, replaces or removes an
object row (uploads, bulk loads, deletes, copies) keeps them right; blobs nobody references are
deleted after the transaction that dropped their last reference commits.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from bulkmover.emulator.gcs.blobs import BlobStore, Digest
from bulkmover.emulator.gcs.errors import GcsApiError, bucket_not_found, object_not_found
from bulkmover.emulator.gcs.rows import (
    BucketRow,
    NewObject,
    ObjectRow,
    Preconditions,
    UploadRow,
    now_us,
)

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA_VERSION = "1"
UPLOAD_SESSION_LIFETIME_US = 7 * 24 * 3600 * 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    metageneration INTEGER NOT NULL DEFAULT 1,
    location TEXT NOT NULL,
    storage_class TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    crc32c TEXT NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs (id) WHERE refs <= 0;
CREATE TABLE IF NOT EXISTS objects (
    bucket_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    metageneration INTEGER NOT NULL,
    blob_id INTEGER NOT NULL,
    content_type TEXT,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    extra TEXT,
    PRIMARY KEY (bucket_id, name)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS objects_ref_insert AFTER INSERT ON objects BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;
END;
CREATE TRIGGER IF NOT EXISTS objects_ref_delete AFTER DELETE ON objects BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
END;
CREATE TRIGGER IF NOT EXISTS objects_ref_update AFTER UPDATE OF blob_id ON objects
WHEN OLD.blob_id <> NEW.blob_id BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;
END;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT,
    extra TEXT,
    received INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    generation INTEGER
) WITHOUT ROWID;
"""

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_OBJECT_COLUMNS = (
    "o.name, o.generation, o.metageneration, o.content_type, o.created_us, o.updated_us, "
    "o.extra, b.sha256, b.size, b.md5, b.crc32c"
)
_OBJECT_FROM = "objects o CROSS JOIN blobs b ON b.id = o.blob_id"


class Store:
    """The index of one data dir. Reads run on the caller's thread; writes on the writer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = BlobStore(root)
        self.uploads_dir = root / "uploads"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        path = root / "index.sqlite3"
        self._writer_conn = _connect(path, cache_mib=64)
        self._writer_conn.executescript(_SCHEMA)
        self._reader = _connect(path, cache_mib=32)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gcs-writer")
        self._lock = threading.Lock()
        self._last_generation = 0
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('last_generation', '0')",
                (SCHEMA_VERSION,),
            )
            (last,) = conn.execute("SELECT value FROM meta WHERE key='last_generation'").fetchone()
            self._last_generation = int(last)
        self._collect_garbage()
        self._expire_uploads()

    # ---- plumbing ------------------------------------------------------------------------

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the write ``fn`` on the single writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._reader.close()
        self._writer_conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer_conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'last_generation'",
                    (str(self._last_generation),),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _next_generations(self, count: int = 1) -> int:
        """The first of ``count`` fresh generations (microsecond clock, strictly increasing)."""
        first = max(now_us(), self._last_generation + 1)
        self._last_generation = first + count - 1
        return first

    def _collect_garbage(self) -> None:
        """Delete blobs that no object references any more (rows first, then files)."""
        conn = self._writer_conn
        rows = conn.execute("SELECT id, sha256 FROM blobs WHERE refs <= 0").fetchall()
        if not rows:
            return
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "DELETE FROM blobs WHERE id = ? AND refs <= 0", [(r[0],) for r in rows]
            )
            conn.execute("COMMIT")
        for _, sha in rows:
            self.blobs.remove(sha)

    def _expire_uploads(self) -> None:
        """Forget resumable sessions older than a week, as the real service does."""
        cutoff = now_us() - UPLOAD_SESSION_LIFETIME_US
        with self._transaction() as conn:
            expired = conn.execute(
                "DELETE FROM uploads WHERE created_us < ? RETURNING id", (cutoff,)
            ).fetchall()
        for (upload_id,) in expired:
            self.upload_path(upload_id).unlink(missing_ok=True)

    def _blob_id(self, conn: sqlite3.Connection, obj: NewObject) -> int:
        """The blob row of ``obj``'s bytes, moving its temporary file into place first."""
        digest = obj.digest
        if obj.temp is not None:
            self.blobs.adopt(obj.temp, digest)
        elif obj.materialize is not None and not self.blobs.path(digest.sha256).exists():
            self.blobs.adopt(obj.materialize(), digest)
        conn.execute(
            "INSERT INTO blobs (sha256, size, md5, crc32c) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (sha256) DO NOTHING",
            (digest.sha256, digest.size, digest.md5, digest.crc32c),
        )
        row = conn.execute("SELECT id FROM blobs WHERE sha256 = ?", (digest.sha256,)).fetchone()
        return int(row[0])

    # ---- buckets -------------------------------------------------------------------------

    def bucket(self, name: str) -> BucketRow | None:
        return _bucket(self._reader, name)

    def require_bucket(self, name: str) -> BucketRow:
        row = self.bucket(name)
        if row is None:
            raise bucket_not_found(name)
        return row

    def list_buckets(self, prefix: str, after: str, limit: int) -> list[BucketRow]:
        rows = self._reader.execute(
            "SELECT * FROM buckets WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
            (after, len(prefix), prefix, limit),
        ).fetchall()
        return [BucketRow(*r) for r in rows]

    def create_bucket(
        self,
        name: str,
        location: str = "US",
        storage_class: str = "STANDARD",
        exist_ok: bool = False,
    ) -> BucketRow:
        with self._transaction() as conn:
            existing = _bucket(conn, name)
            if existing is not None:
                if exist_ok:
                    return existing
                raise GcsApiError(
                    409,
                    "conflict",
                    "Your previous request to create the named bucket succeeded "
                    "and you already own it.",
                )
            now = now_us()
            conn.execute(
                "INSERT INTO buckets (name, created_us, updated_us, location, storage_class) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, now, now, location, storage_class),
            )
            row = _bucket(conn, name)
        assert row is not None
        return row

    def delete_bucket(self, name: str) -> None:
        with self._transaction() as conn:
            row = _bucket(conn, name)
            if row is None:
                raise bucket_not_found(name)
            if conn.execute(
                "SELECT 1 FROM objects WHERE bucket_id = ? LIMIT 1", (row.id,)
            ).fetchone():
                raise GcsApiError(409, "conflict", "The bucket you tried to delete is not empty.")
            conn.execute("DELETE FROM buckets WHERE id = ?", (row.id,))
            conn.execute("DELETE FROM uploads WHERE bucket = ?", (name,))

    # ---- objects: reads ------------------------------------------------------------------

    def get_object(self, bucket: str, name: str) -> ObjectRow | None:
        b = self.require_bucket(bucket)
        return _object(self._reader, b.id, name)

    def require_object(self, bucket: str, name: str) -> ObjectRow:
        row = self.get_object(bucket, name)
        if row is None:
            raise object_not_found(bucket, name)
        return row

    def scan(
        self,
        bucket_id: int,
        start: str,
        start_inclusive: bool,
        end: str | None,
        limit: int,
    ) -> list[ObjectRow]:
        """Up to ``limit`` objects in name order from ``start``, below ``end`` (exclusive)."""
        op = ">=" if start_inclusive else ">"
        sql = (
            f"SELECT {_OBJECT_COLUMNS} FROM {_OBJECT_FROM} WHERE o.bucket_id = ? AND o.name {op} ?"
        )
        params: list[Any] = [bucket_id, start]
        if end is not None:
            sql += " AND o.name < ?"
            params.append(end)
        sql += " ORDER BY o.name LIMIT ?"
        params.append(limit)
        return [ObjectRow(*r) for r in self._reader.execute(sql, params)]

    def first_name(
        self, bucket_id: int, start: str, start_inclusive: bool, end: str | None
    ) -> str | None:
        """The first object name at or after ``start`` and below ``end``, if any."""
        op = ">=" if start_inclusive else ">"
        sql = f"SELECT name FROM objects WHERE bucket_id = ? AND name {op} ?"
        params: list[Any] = [bucket_id, start]
        if end is not None:
            sql += " AND name < ?"
            params.append(end)
        row = self._reader.execute(sql + " ORDER BY name LIMIT 1", params).fetchone()
        return None if row is None else str(row[0])

    # ---- objects: writes (writer thread) -------------------------------------------------

    def put_object(
        self, bucket: str, obj: NewObject, pre: Preconditions | None = None
    ) -> ObjectRow:
        """Create or replace one object; the blob file is in place before the row commits."""
        with self._transaction() as conn:
            row = self._put(conn, bucket, obj, pre)
        self._collect_garbage()
        return row

    def _put(
        self, conn: sqlite3.Connection, bucket: str, obj: NewObject, pre: Preconditions | None
    ) -> ObjectRow:
        b = _bucket(conn, bucket)
        if b is None:
            raise bucket_not_found(bucket)
        if pre is not None:
            pre.check(_object(conn, b.id, obj.name))
        blob_id = self._blob_id(conn, obj)
        gen = self._next_generations()
        now = now_us()
        params = (b.id, obj.name, gen, blob_id, obj.content_type, now, now, obj.extra)
        conn.execute(_UPSERT_OBJECT, params)
        row = _object(conn, b.id, obj.name)
        assert row is not None
        return row

    def bulk_insert(self, bucket: str, objects: Sequence[NewObject]) -> int:
        """Create or replace many objects in one transaction (the bulk load path)."""
        with self._transaction() as conn:
            b = _bucket(conn, bucket)
            if b is None:
                raise bucket_not_found(bucket)
            blob_ids: dict[str, int] = {}
            for obj in objects:
                if obj.temp is not None or obj.digest.sha256 not in blob_ids:
                    blob_ids[obj.digest.sha256] = self._blob_id(conn, obj)
            first = self._next_generations(len(objects))
            now = now_us()
            conn.executemany(
                _UPSERT_OBJECT,
                (
                    (
                        b.id,
                        o.name,
                        first + i,
                        blob_ids[o.digest.sha256],
                        o.content_type,
                        now,
                        now,
                        o.extra,
                    )
                    for i, o in enumerate(objects)
                ),
            )
        self._collect_garbage()
        return len(objects)

    def delete_object(self, bucket: str, name: str, pre: Preconditions | None = None) -> None:
        with self._transaction() as conn:
            b, current = _existing_object(conn, bucket, name, pre)
            conn.execute("DELETE FROM objects WHERE bucket_id = ? AND name = ?", (b.id, name))
        self._collect_garbage()

    def patch_object(
        self,
        bucket: str,
        name: str,
        content_type: str | None,
        extra: dict[str, Any],
        pre: Preconditions | None = None,
    ) -> ObjectRow:
        """Replace the metadata of an object (metageneration + 1); its bytes stay."""
        with self._transaction() as conn:
            b, current = _existing_object(conn, bucket, name, pre)
            conn.execute(
                "UPDATE objects SET metageneration = metageneration + 1, content_type = ?, "
                "extra = ?, updated_us = ? WHERE bucket_id = ? AND name = ?",
                (content_type, json.dumps(extra) if extra else None, now_us(), b.id, name),
            )
            row = _object(conn, b.id, name)
        assert row is not None
        return row

    def copy_object(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        pre: Preconditions | None = None,
    ) -> ObjectRow:
        """Copy without touching bytes: the new row references the same blob."""
        with self._transaction() as conn:
            sb = _bucket(conn, src_bucket)
            db = _bucket(conn, dst_bucket)
            if sb is None:
                raise bucket_not_found(src_bucket)
            if db is None:
                raise bucket_not_found(dst_bucket)
            src = _object(conn, sb.id, src_name)
            if src is None:
                raise object_not_found(src_bucket, src_name)
            if pre is not None:
                pre.check(_object(conn, db.id, dst_name))
            (blob_id,) = conn.execute(
                "SELECT blob_id FROM objects WHERE bucket_id = ? AND name = ?", (sb.id, src_name)
            ).fetchone()
            gen = self._next_generations()
            now = now_us()
            conn.execute(
                _UPSERT_OBJECT,
                (db.id, dst_name, gen, blob_id, src.content_type, now, now, src.extra),
            )
            row = _object(conn, db.id, dst_name)
        self._collect_garbage()
        assert row is not None
        return row

    # ---- resumable upload sessions -------------------------------------------------------

    def upload_path(self, upload_id: str) -> Path:
        return self.uploads_dir / upload_id

    def get_upload(self, upload_id: str) -> UploadRow | None:
        if not _UPLOAD_ID.fullmatch(upload_id):
            return None
        row = self._reader.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        return None if row is None else UploadRow(*row)

    def create_upload(
        self, upload_id: str, bucket: str, name: str, content_type: str | None, extra: str | None
    ) -> None:
        with self._transaction() as conn:
            if _bucket(conn, bucket) is None:
                raise bucket_not_found(bucket)
            conn.execute(
                "INSERT INTO uploads (id, bucket, name, content_type, extra, created_us) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (upload_id, bucket, name, content_type, extra, now_us()),
            )
        self.upload_path(upload_id).touch()

    def set_upload_received(self, upload_id: str, received: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE uploads SET received = ? WHERE id = ?", (received, upload_id))

    def finish_upload(self, upload_id: str, digest: Digest) -> ObjectRow:
        """Turn a complete session file into an object, and remember its generation."""
        with self._transaction() as conn:
            found = conn.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
            if found is None:
                raise GcsApiError(404, "notFound", f"No such upload session: {upload_id}")
            session = UploadRow(*found)
            new = NewObject(
                session.name,
                digest,
                temp=self.upload_path(upload_id),
                content_type=session.content_type,
                extra=session.extra,
            )
            row = self._put(conn, session.bucket, new, None)
            conn.execute(
                "UPDATE uploads SET generation = ?, received = ? WHERE id = ?",
                (row.generation, digest.size, upload_id),
            )
        self._collect_garbage()
        return row

    def delete_upload(self, upload_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        self.upload_path(upload_id).unlink(missing_ok=True)


_UPSERT_OBJECT = (
    "INSERT INTO objects (bucket_id, name, generation, metageneration, blob_id, content_type, "
    "created_us, updated_us, extra) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?) "
    "ON CONFLICT (bucket_id, name) DO UPDATE SET generation = excluded.generation, "
    "metageneration = 1, blob_id = excluded.blob_id, content_type = excluded.content_type, "
    "created_us = excluded.created_us, updated_us = excluded.updated_us, extra = excluded.extra"
)


def _connect(path: Path, cache_mib: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute(f"PRAGMA cache_size = -{cache_mib * 1024}")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def _existing_object(
    conn: sqlite3.Connection, bucket: str, name: str, pre: Preconditions | None
) -> tuple[BucketRow, ObjectRow]:
    """The bucket and live object a metadata write applies to; 404s and preconditions first."""
    b = _bucket(conn, bucket)
    if b is None:
        raise bucket_not_found(bucket)
    current = _object(conn, b.id, name)
    if current is None:
        raise object_not_found(bucket, name)
    if pre is not None:
        pre.check(current)
    return b, current


def _bucket(conn: sqlite3.Connection, name: str) -> BucketRow | None:
    row = conn.execute("SELECT * FROM buckets WHERE name = ?", (name,)).fetchone()
    return None if row is None else BucketRow(*row)


def _object(conn: sqlite3.Connection, bucket_id: int, name: str) -> ObjectRow | None:
    row = conn.execute(
        f"SELECT {_OBJECT_COLUMNS} FROM {_OBJECT_FROM} WHERE o.bucket_id = ? AND o.name = ?",
        (bucket_id, name),
    ).fetchone()
    return None if row is None else ObjectRow(*row)
