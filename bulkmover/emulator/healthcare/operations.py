"""Import and export operations: asynchronous, paced, cancellable, resumable after a restart.

Each operation is one task owned by the engine. Its per-file steps commit together with the
instance they store and the operation's counters, so after a crash the operation resumes where
its last commit left it: files already counted are not counted again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bulkmover.emulator.healthcare import quota_errors
from bulkmover.emulator.healthcare.cpu import Batcher, CpuPool
from bulkmover.emulator.healthcare.db import Database, InstanceRow, OperationRow, StoreRow
from bulkmover.emulator.healthcare.dicomfiles import (
    DicomFailure,
    InstanceRecord,
    RenderError,
    parse_and_stage_many,
    render,
)
from bulkmover.emulator.healthcare.filters import ResourcePath, parse_resource_path
from bulkmover.emulator.healthcare.formats import ExportFormat, parse_mime_type
from bulkmover.emulator.healthcare.gcsclient import GcsClient, GcsError
from bulkmover.emulator.healthcare.limits import Pacer
from bulkmover.emulator.healthcare.names import StoreName, parse_gcs_uri
from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.healthcare.rpc import Code, status_json
from bulkmover.emulator.healthcare.views import (
    IMPORT,
    log_entry,
    now_rfc3339,
    parse_rfc3339,
    response_json,
)
from bulkmover.emulator.healthcare.wildcard import parse_import_uri

CONCURRENCY = 16  # files in flight per operation (downloads, parses, uploads)
T = TypeVar("T")


class OperationFailed(Exception):
    """Ends an operation with ``error`` (a google.rpc.Status)."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Live:
    """A running operation's counters; the database row catches up at every flush."""

    row: OperationRow
    store: StoreName
    store_id: int
    success: int
    failure: int
    pending: int
    skipped: int
    logged: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    abort: OperationFailed | None = None
    task: asyncio.Task[None] | None = None
    saved: tuple[int, int, int, int, int] | None = None  # counts at the last flush

    @property
    def stopping(self) -> bool:
        return self.cancel.is_set() or self.abort is not None

    @property
    def processed(self) -> int:
        return self.success + self.failure + self.skipped

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        """(success, failure, pending, skipped, logged), as the database row keeps them."""
        return (self.success, self.failure, self.pending, self.skipped, self.logged)


class OperationEngine:
    def __init__(
        self,
        db: Database,
        knobs: HealthcareRealism,
        gcs: GcsClient,
        cpu: CpuPool,
        rng: random.Random,
    ) -> None:
        self.db = db
        self.knobs = knobs
        self.gcs = gcs
        self.cpu = cpu
        self.rng = rng
        self.live: dict[str, Live] = {}
        self._store_pacers: dict[int, Pacer] = {}
        self._staging = itertools.count()
        self._known_dirs: set[Path] = set()
        self.parse: Batcher[tuple[bytes, str], InstanceRecord | DicomFailure] = Batcher(
            cpu, parse_and_stage_many
        )

    # -- starting and stopping ----------------------------------------------------------------
    def new_operation_id(self) -> str:
        while True:
            op_id = str(self.rng.randrange(10**18, 10**19))
            if not self.db.operation_exists(op_id):
                return op_id

    def start(
        self,
        store: StoreRow,
        version: str,
        method: str,
        request: dict[str, Any],
        plan: dict[str, Any],
    ) -> OperationRow:
        """Record a new operation (durably) and launch it; 429 beyond the running cap."""
        project = store.name.project
        running = self.db.running_in_project(project)
        if running >= self.knobs.max_running_operations:
            raise quota_errors.running_cap(
                self.knobs.quota_errors, project, running, self.knobs.max_running_operations
            )
        if self.rng.random() < self.knobs.failed_operation_rate:
            plan = {
                **plan,
                "fail_at": self.rng.random(),
                "fail_code": self.rng.choice(["INTERNAL", "UNAVAILABLE"]),
            }
        name = f"{store.name.dataset_name.path}/operations/{self.new_operation_id()}"
        row = self.db.add_operation(
            name=name,
            dataset=store.name.dataset_name,
            store_id=store.id,
            store_path=store.name.path,
            method=method,
            version=version,
            request=request,
            now=now_rfc3339(),
            plan=plan,
        )
        self.db.commit()
        self._launch(row, store)
        return row

    def resume_all(self) -> None:
        """Relaunch the operations a previous run left unfinished."""
        for row in self.db.unfinished_operations():
            store = self.db.store_by_id(row.store_id) if row.store_id is not None else None
            if store is None:
                self.db.finish_operation(
                    row.seq,
                    now_rfc3339(),
                    status_json(Code.NOT_FOUND, f"DICOM store {row.store_path} no longer exists"),
                    None,
                )
                continue
            self._launch(row, store)
        self.db.commit()

    def _launch(self, row: OperationRow, store: StoreRow) -> None:
        live = Live(
            row=row,
            store=store.name,
            store_id=store.id,
            success=row.success,
            failure=row.failure,
            pending=row.pending,
            skipped=row.skipped,
            logged=row.logged,
        )
        if row.cancel_requested:
            live.cancel.set()
        self.live[row.name] = live
        live.task = asyncio.create_task(self._run(live), name=f"operation-{row.op_id}")

    def cancel(self, name: str) -> None:
        self.db.request_cancel(name)
        self.db.commit()
        live = self.live.get(name)
        if live is not None:
            live.cancel.set()

    def abort_store(self, store_id: int, message: str) -> None:
        for live in self.live.values():
            if live.store_id == store_id and live.abort is None:
                live.abort = OperationFailed(Code.NOT_FOUND, message)

    def flush_progress(self) -> None:
        """Write the counters that changed since the last flush (into the open transaction)."""
        for live in self.live.values():
            counts = live.counts
            if counts != live.saved:
                self.db.save_progress(live.row.seq, *counts)
                live.saved = counts

    def live_row(self, row: OperationRow) -> OperationRow:
        """``row`` with the in-memory counters of a running operation (fresher than the flush)."""
        live = self.live.get(row.name)
        if live is None or row.done:
            return row
        return OperationRow(
            **{
                **row.__dict__,
                "success": live.success,
                "failure": live.failure,
                "pending": live.pending,
                "skipped": live.skipped,
            }
        )

    async def shutdown(self) -> None:
        """Stop every task; unfinished operations stay unfinished and resume on the next start."""
        tasks = [live.task for live in self.live.values() if live.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.flush_progress()
        self.db.commit()

    # -- the operation's life -----------------------------------------------------------------
    async def _run(self, live: Live) -> None:
        error: dict[str, Any] | None = None
        try:
            if live.row.method == IMPORT:
                await self._import(live)
            else:
                await self._export(live)
            if live.abort is not None:
                raise live.abort
            if live.row.method == IMPORT and live.failure and self.knobs.partial_failure == "error":
                # One reading of "returns an error if any of the files to import are not DICOM
                # files": the operation ends with an error, its counters kept beside it.
                raise OperationFailed(
                    Code.INVALID_ARGUMENT,
                    f"{live.failure} of {live.success + live.failure} file(s) could not be"
                    " imported; see the import's error entries in Cloud Logging for details",
                )
            await self._hold_until_deadline(live)
            if live.cancel.is_set():
                raise OperationFailed(
                    Code.CANCELLED, "the operation was cancelled (operations.cancel was called)"
                )
        except OperationFailed as exc:
            error = status_json(exc.code, exc.message)
        except asyncio.CancelledError:
            self.flush_progress()
            raise
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            error = status_json(Code.INTERNAL, f"emulator error: {type(exc).__name__}: {exc}")
        response = None if error else response_json(live.row.version, live.row.method)
        self.flush_progress()
        self.db.finish_operation(live.row.seq, now_rfc3339(), error, response)
        self.db.commit()
        self.live.pop(live.row.name, None)

    async def _hold_until_deadline(self, live: Live) -> None:
        """Keep the operation running until its minimum duration (``operation_time``) is over."""
        if self.knobs.operation_time <= 0:
            return
        started = parse_rfc3339(live.row.create_time).timestamp()
        remaining = started + self.knobs.operation_time - time.time()
        if remaining > 0:
            try:
                await asyncio.wait_for(live.cancel.wait(), remaining)
            except TimeoutError:
                pass

    def _failure_point(self, live: Live, total: int) -> int | None:
        fail_at = live.row.plan.get("fail_at")
        return None if fail_at is None else int(float(fail_at) * total)

    async def _each(
        self,
        live: Live,
        items: list[T],
        total: int,
        step: Callable[[T], Awaitable[None]],
    ) -> None:
        """Run ``step`` over ``items``, paced, ``CONCURRENCY`` at a time, until done or stopped."""
        op_pacer = Pacer(self.knobs.operation_speed)
        store_pacer = self._store_pacers.setdefault(
            live.store_id, Pacer(self.knobs.store_throughput)
        )
        fail_after = self._failure_point(live, total)
        iterator: Iterator[T] = iter(items)

        async def worker() -> None:
            for item in iterator:
                if fail_after is not None and live.processed >= fail_after and live.abort is None:
                    code = Code[str(live.row.plan.get("fail_code", "INTERNAL"))]
                    live.abort = OperationFailed(
                        code,
                        f"the operation failed after {live.processed} of {total} items "
                        f"(injected by --failed-operation-rate)",
                    )
                if live.stopping:
                    return
                await op_pacer.wait()
                await store_pacer.wait()
                if live.stopping:
                    return
                await step(item)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(CONCURRENCY, max(1, len(items)))):
                group.create_task(worker())

    def _failed(self, live: Live, item: str, target: str, code: int, message: str) -> None:
        """Count a per-item failure and log it while under ``log_errors_per_operation``."""
        live.failure += 1
        live.pending -= 1
        if live.logged < self.knobs.log_errors_per_operation:
            live.logged += 1
            entry = log_entry(
                store=live.store,
                method=live.row.method,
                op_id=live.row.op_id,
                insert_id=f"{live.row.op_id}-{live.processed}",
                target=target,
                code=code,
                message=message,
            )
            self.db.add_log_entry(live.store.project, live.row.op_id, entry, self._log_delay())
        self.db.add_items(live.row.seq, [(item, "f")])

    def _log_delay(self) -> float:
        """Seconds until a new log entry is visible; the dice roll only when jitter is asked
        for, so other knobs' seeded runs stay as they were."""
        jitter = self.knobs.log_ingestion_jitter
        extra = self.rng.uniform(0, jitter) if jitter > 0 else 0.0
        return self.knobs.log_ingestion_delay + extra

    # -- import -------------------------------------------------------------------------------
    async def _import(self, live: Live) -> None:
        uri = live.row.request["gcsSource"]["uri"]
        pattern = parse_import_uri(uri)
        names: list[str] = []
        try:
            async for page in self.gcs.list_objects(pattern.bucket, pattern.prefix):
                names.extend(obj.name for obj in page if pattern.matches(obj.name))
                if live.stopping:
                    return
        except GcsError as exc:
            raise OperationFailed(exc.code, exc.message) from None
        if not names:
            raise OperationFailed(Code.NOT_FOUND, f"no Cloud Storage objects match {uri}")
        done = self.db.done_items(live.row.seq)
        todo = [name for name in names if name not in done]
        live.pending = len(todo)

        async def step(name: str) -> None:
            await self._import_one(live, pattern.bucket, name)

        await self._each(live, todo, len(names), step)

    async def _import_one(self, live: Live, bucket: str, name: str) -> None:
        source = f"gs://{bucket}/{name}"
        try:
            data = await self.gcs.download(bucket, name)
        except GcsError as exc:
            self._failed(live, name, source, exc.code, exc.message)
            return
        staging = self.db.staging_dir / f"{live.row.seq}-{next(self._staging)}.dcm"
        result = await self.parse((data, str(staging)))
        if isinstance(result, DicomFailure):
            self._failed(live, name, source, result.code, result.message)
            return
        if live.abort is not None and live.abort.code is Code.NOT_FOUND:
            staging.unlink(missing_ok=True)  # the store was deleted meanwhile
            return
        outcome = self.store_instance(live.store_id, result, staging, live.row.name)
        if outcome == "duplicate" and self.knobs.duplicates_count_as == "skip":
            live.skipped += 1
        else:
            live.success += 1
        live.pending -= 1
        self.db.add_items(live.row.seq, [(name, outcome[0])])

    def store_instance(self, store_id: int, rec: InstanceRecord, staging: Path, op: str) -> str:
        """Keep a parsed instance unless its UIDs exist ('stored' or 'duplicate').

        Runs without awaiting, so the duplicate check and the insert are one atomic step.
        """
        if self.db.has_instance(store_id, rec.sop_uid):
            staging.unlink(missing_ok=True)
            return "duplicate"
        final = self.db.blob_path(store_id, rec)
        if final.parent not in self._known_dirs:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(final.parent)
        os.replace(staging, final)
        self.db.add_instance(store_id, rec, final, op)
        return "stored"

    def forget_store_dirs(self, store_id: int) -> None:
        root = self.db.store_dir(store_id)
        self._known_dirs = {d for d in self._known_dirs if root not in d.parents}

    # -- export -------------------------------------------------------------------------------
    async def _export(self, live: Live) -> None:
        request = live.row.request
        destination = request["gcsDestination"]
        dest = parse_gcs_uri(
            destination.get("uriPrefix"), "gcsDestination.uriPrefix", allow_empty_object=True
        )
        prefix = dest.object if not dest.object or dest.object.endswith("/") else dest.object + "/"
        fmt = parse_mime_type(destination.get("mimeType"))
        try:
            await self.gcs.check_bucket(dest.bucket)
        except GcsError as exc:
            raise OperationFailed(exc.code, exc.message) from None
        done = self.db.done_items(live.row.seq)
        filters = live.row.plan.get("filter")
        targets: list[InstanceRow | ResourcePath] = []
        seen: set[str] = set()
        paths: list[ResourcePath | None] = (
            [None] if filters is None else [parse_resource_path(p) for p in filters]
        )
        for path in paths:
            rows = self.db.instances_under(
                live.store_id,
                path.study if path else None,
                path.series if path else None,
                path.instance if path else None,
            )
            if path is not None and not rows:
                targets.append(path)
            for inst in rows:
                if inst.sop not in seen:
                    seen.add(inst.sop)
                    targets.append(inst)
        todo = [t for t in targets if _item_key(t) not in done]
        live.pending = len(todo)

        async def step(target: InstanceRow | ResourcePath) -> None:
            if isinstance(target, ResourcePath):
                resource = f"{live.store.path}/dicomWeb{target}"
                self._failed(
                    live, str(target), resource, Code.NOT_FOUND, f"{target} not found in the store"
                )
                return
            await self._export_one(live, target, dest.bucket, prefix, fmt)

        await self._each(live, todo, len(targets), step)

    async def _export_one(
        self, live: Live, inst: InstanceRow, bucket: str, prefix: str, fmt: ExportFormat
    ) -> None:
        resource = (
            f"{live.store.path}/dicomWeb/studies/{inst.study}/series/{inst.series}"
            f"/instances/{inst.sop}"
        )
        try:
            files = await self.cpu.run(render, str(self.db.data_dir / inst.blob), fmt)
            for suffix, data in files:
                name = f"{prefix}{inst.study}/{inst.series}/{inst.sop}{suffix}{fmt.extension}"
                await self.gcs.upload(bucket, name, data, fmt.content_type)
        except RenderError as exc:
            self._failed(live, inst.sop, resource, exc.code, exc.message)
            return
        except GcsError as exc:
            self._failed(live, inst.sop, resource, exc.code, exc.message)
            return
        except FileNotFoundError:
            self._failed(live, inst.sop, resource, Code.DATA_LOSS, "instance bytes are missing")
            return
        live.success += 1
        live.pending -= 1
        self.db.add_items(live.row.seq, [(inst.sop, "s")])


def _item_key(target: InstanceRow | ResourcePath) -> str:
    return str(target) if isinstance(target, ResourcePath) else target.sop
