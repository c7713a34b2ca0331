"""Which files of a shard the store holds, without importing anything again.

Each file's DICOM header is read from Cloud Storage (a range read) and its SOP Instance UID
looked up in the store, one QIDO per study. A file whose instance is there was imported (or was
already stored: a skipped duplicate counts as in the store either way); a file that is not DICOM,
or whose instance is missing, stays a candidate for a child import or STOW-RS, which say why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bulkmover.gcs.client import StorageClient
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.resources import StorePath
from bulkmover.inspection.headers import Header, read_headers
from bulkmover.inspection.presence import present_sop_uids


class HeaderProber:
    def __init__(self, storage: StorageClient, client: HealthcareClient, store: StorePath) -> None:
        self.storage = storage
        self.client = client
        self.store = store

    async def present(self, bucket: str, names: list[str]) -> AsyncIterator[tuple[str, bool]]:
        headers: dict[str, Header] = {}
        async for name, result in read_headers(self.storage, bucket, names):
            if isinstance(result, Header):
                headers[name] = result
            else:
                yield name, False
        held = await present_sop_uids(self.client, self.store, headers.values())
        for name, header in headers.items():
            yield name, header.sop_uid in held
