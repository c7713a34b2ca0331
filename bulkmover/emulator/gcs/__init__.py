"""Cloud Storage emulator: the GCS JSON API subset clients use, over an ordered SQLite index.

Run it with ``python -m bulkmover.emulator.gcs --port P --data-dir DIR`` (port 0 picks a free
one; the process prints ``READY gcs http://127.0.0.1:PORT``) and point clients at it with
``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT`` (google-cloud-storage, gcloud-aio-storage).

What it serves, on the real service's paths:

- buckets: insert, get, list, delete (when empty);
- objects: insert (``uploadType=media``, ``multipart``, ``resumable`` with chunked PUTs),
  get (metadata; ``alt=media`` and ``/download/...`` with single byte ranges), delete, patch,
  copy/rewrite, and list with ``prefix``, ``delimiter``, ``startOffset``, ``endOffset``,
  ``pageToken``, ``maxResults`` (default and cap 1000, prefixes and items counted together),
  ``includeTrailingDelimiter``, ``matchGlob`` and ``fields`` (partial responses);
- GCS JSON error bodies; realism knobs (:class:`GcsRealism`): per-request and per-page latency,
  a read-rate limit answered 429 with Retry-After, injected 503s.

Scale: objects are rows of a ``WITHOUT ROWID`` table keyed by (bucket, name), so a page is one
range scan whatever the bucket size; bytes are content-addressed files (identical contents are
stored once); ``--data-dir`` survives restarts and kill -9 (SQLite WAL; a row is committed only
after its bytes are written to their file; files are not fsynced, so a power cut may lose the
last writes).

Bulk path, for loading millions of objects fast::

    POST /_emulator/b/{bucket}/bulk        (body: NDJSON, streamed)
    {"name": "a/b/0001.dcm", "size": 4096}             synthetic content, see synthetic_content
    {"name": "notes.txt", "content_b64": "aGVsbG8="}   given content
    -> {"kind": "emulator#bulkLoad", "bucket": "...", "inserted": 2}

The bucket is created if missing; rows commit in batches of 10,000. From Python, use
:func:`bulk_load` (async) or :func:`bulk_load_sync` with :class:`BulkRow` rows.
"""

from bulkmover.emulator.gcs.client import BulkRow, bulk_load, bulk_load_sync
from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.gcs.synthetic import iter_synthetic, synthetic_content

__all__ = [
    "BulkRow",
    "GcsRealism",
    "bulk_load",
    "bulk_load_sync",
    "iter_synthetic",
    "synthetic_content",
]
