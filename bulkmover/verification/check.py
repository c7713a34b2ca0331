"""``verify``: is every file the ledger calls imported really in the DICOM store?

An import operation never lists what it stored, and instances can disappear later (deleted by
hand, a store re-created), so bulkmover's own record is checked against the store itself:

* always, the store's instance count (``getDICOMStoreMetrics``) against the number of imported
  files. The two legitimately differ: a file whose instance was already stored is skipped by the
  import (a duplicate) yet counts as imported, and the store may hold instances that came from
  elsewhere. Counts alone cannot name a missing file;
* with a sample or all files, each file's UIDs are read from its DICOM header in Cloud Storage
  (a ranged read) and its SOP Instance UID is looked up in the store, one QIDO-RS search per
  study. Files are taken in ledger order, a chunk at a time, so a study's files mostly share one
  search and memory stays bounded whatever the ledger's size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal, Protocol

from bulkmover.config import Config
from bulkmover.errors import ApiError
from bulkmover.gcs.client import StorageClient, storage_client
from bulkmover.healthcare.auth import credentials_for
from bulkmover.healthcare.client import DEFAULT_ENDPOINT, HealthcareClient
from bulkmover.healthcare.dicomweb import StoreMetrics
from bulkmover.healthcare.resources import StorePath
from bulkmover.inspection.headers import Header, read_headers
from bulkmover.inspection.presence import present_sop_uids
from bulkmover.verification.ledger import ImportedFiles, LedgerFile, open_ledger

CHUNK = 5000
"""Files whose headers are read before their studies are searched."""
HEADER_CONCURRENCY = 64
QIDO_CONCURRENCY = 8

Mode = Literal["count", "sample", "all"]


@dataclass(frozen=True, slots=True)
class Missing:
    """An imported file whose instance the store does not hold."""

    uri: str
    sop_uid: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An imported file whose DICOM header could not be read now (so it cannot be checked)."""

    uri: str
    reason: str


@dataclass
class VerifyReport:
    store: str
    instances: int
    imported_files: int
    mode: Mode = "count"
    checked: int = 0
    missing: list[Missing] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every checked file's instance is in the store (counts alone never fail a check)."""
        return not self.missing and not self.unreadable

    @property
    def note(self) -> str:
        """What the instance count says about the imported files."""
        files, instances = self.imported_files, self.instances
        if files == 0:
            extra = f"; the store holds {instances:,} instances" if instances else ""
            return f"no file is recorded as imported yet{extra}"
        if files == instances:
            return "the store's instance count matches the imported files"
        if files > instances:
            tail = "" if self.mode == "all" else "; --all tells whether any instance is missing"
            return (
                f"{files - instances:,} more imported files than instances: a file whose"
                " instance was already stored (a duplicate, skipped by the import) counts as"
                f" imported without adding an instance{tail}"
            )
        return (
            f"the store holds {instances - files:,} more instances than files bulkmover"
            " imported: instances stored by other means"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "instances": self.instances,
            "imported_files": self.imported_files,
            "checked": self.checked,
            "missing": [{"uri": m.uri, "sop_uid": m.sop_uid} for m in self.missing],
            "unreadable": [{"uri": u.uri, "reason": u.reason} for u in self.unreadable],
            "ok": self.ok,
            "mode": self.mode,
            "note": self.note,
        }


class VerifyProgress(Protocol):
    """What a live view is told (``verification.command`` draws it with rich)."""

    def started(self, files: int) -> None: ...

    def read(self, files: int) -> None: ...

    def looked_up(self, files: int) -> None: ...


async def verify(
    config: Config,
    *,
    sample: int | None = None,
    all_files: bool = False,
    seed: int | None = None,
    progress: VerifyProgress | None = None,
) -> VerifyReport:
    """Check the config's DICOM store against its state file's imported files."""
    state = open_ledger(config)
    try:
        ledger = ImportedFiles(state)
        imported = ledger.count()
        mode: Mode = "all" if all_files else "sample" if sample is not None else "count"
        credentials = await credentials_for(config.credentials)
        store = config.target.store_path
        async with HealthcareClient(
            endpoint=config.target.endpoint or DEFAULT_ENDPOINT,
            api_version=config.target.api_version,
            credentials=credentials,
        ) as client:
            metrics = await _metrics(client, store)
            report = VerifyReport(str(store), metrics.instance_count, imported, mode)
            if mode == "count":
                return report
            if mode == "all":
                chosen, total = ledger.all(), imported
            else:
                assert sample is not None
                chosen, total = ledger.sample(sample, seed, imported), min(sample, imported)
            if progress is not None:
                progress.started(total)
            async with storage_client(config, HEADER_CONCURRENCY) as storage:
                for chunk in _chunks(chosen, CHUNK):
                    await _check(chunk, storage, client, store, report, progress)
    finally:
        state.close()
    report.missing.sort(key=lambda m: m.uri)
    report.unreadable.sort(key=lambda u: u.uri)
    return report


async def _metrics(client: HealthcareClient, store: StorePath) -> StoreMetrics:
    try:
        return await client.get_dicom_store_metrics(store)
    except ApiError as err:
        if err.status == 404:
            raise ApiError(
                f"DICOM store {store} not found; fix `target:` in the config (verify checks the"
                " store the state file's runs imported into)",
                status=404,
            ) from None
        raise


def _chunks(files: Iterable[LedgerFile], size: int) -> Iterator[list[LedgerFile]]:
    it = iter(files)
    while chunk := list(islice(it, size)):
        yield chunk


async def _check(
    chunk: list[LedgerFile],
    storage: StorageClient,
    client: HealthcareClient,
    store: StorePath,
    report: VerifyReport,
    progress: VerifyProgress | None,
) -> None:
    """Read the chunk's headers, then look its instances up, study by study."""
    by_bucket: dict[str, list[str]] = defaultdict(list)
    for item in chunk:
        by_bucket[item.bucket].append(item.name)
    readable: list[tuple[str, Header]] = []
    for bucket, names in by_bucket.items():
        async for name, header in read_headers(
            storage, bucket, names, concurrency=HEADER_CONCURRENCY
        ):
            uri = f"gs://{bucket}/{name}"
            if isinstance(header, Header):
                readable.append((uri, header))
            else:
                report.unreadable.append(Unreadable(uri, header))
            if progress is not None:
                progress.read(1)
    present = await present_sop_uids(
        client,
        store,
        (header for _, header in readable),
        concurrency=QIDO_CONCURRENCY,
        on_study=progress.looked_up if progress is not None else None,
    )
    for uri, header in readable:
        if header.sop_uid not in present:
            report.missing.append(Missing(uri, header.sop_uid))
    report.checked += len(chunk)
    if progress is not None:
        progress.looked_up(len(chunk) - len(readable))
