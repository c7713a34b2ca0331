"""JSON resources of the API (storage#object, storage#bucket), shaped like the real service's."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bulkmover.emulator.gcs.store import BucketRow, ObjectRow

DEFAULT_CONTENT_TYPE = "application/octet-stream"
PROJECT_NUMBER = "0"

# Fields a client may set on an object besides name, contentType and its bytes.
WRITABLE_EXTRA_FIELDS = (
    "metadata",
    "contentEncoding",
    "contentDisposition",
    "contentLanguage",
    "cacheControl",
    "customTime",
    "storageClass",
)


def rfc3339(us: int) -> str:
    """Microseconds since the epoch as GCS prints timestamps (millisecond precision, UTC)."""
    dt = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def object_etag(generation: int, metageneration: int) -> str:
    """Like GCS's etags: base64 of the (generation, metageneration) protobuf fields."""
    raw = b"\x08" + _varint(generation) + b"\x10" + _varint(metageneration)
    return base64.b64encode(raw).decode()


def quote_name(name: str) -> str:
    return quote(name, safe="")


def object_resource(row: ObjectRow, bucket: str, base_url: str) -> dict[str, Any]:
    quoted = quote_name(row.name)
    resource: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{bucket}/{row.name}/{row.generation}",
        "selfLink": f"{base_url}/storage/v1/b/{bucket}/o/{quoted}",
        "mediaLink": (
            f"{base_url}/download/storage/v1/b/{bucket}/o/{quoted}"
            f"?generation={row.generation}&alt=media"
        ),
        "name": row.name,
        "bucket": bucket,
        "generation": str(row.generation),
        "metageneration": str(row.metageneration),
        "contentType": row.content_type or DEFAULT_CONTENT_TYPE,
        "storageClass": "STANDARD",
        "size": str(row.size),
        "md5Hash": row.md5,
        "crc32c": row.crc32c,
        "etag": object_etag(row.generation, row.metageneration),
        "timeCreated": rfc3339(row.created_us),
        "updated": rfc3339(row.updated_us),
        "timeStorageClassUpdated": rfc3339(row.created_us),
    }
    if row.extra:
        resource.update(row.extra_fields())
    return resource


def bucket_resource(row: BucketRow, base_url: str) -> dict[str, Any]:
    return {
        "kind": "storage#bucket",
        "id": row.name,
        "selfLink": f"{base_url}/storage/v1/b/{row.name}",
        "projectNumber": PROJECT_NUMBER,
        "name": row.name,
        "timeCreated": rfc3339(row.created_us),
        "updated": rfc3339(row.updated_us),
        "metageneration": str(row.metageneration),
        "location": row.location,
        "locationType": "multi-region",
        "storageClass": row.storage_class,
        "etag": object_etag(0, row.metageneration),
        "iamConfiguration": {
            "uniformBucketLevelAccess": {"enabled": True},
            "publicAccessPrevention": "inherited",
        },
        "rpo": "DEFAULT",
    }
