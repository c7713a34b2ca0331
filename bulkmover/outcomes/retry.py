"""``run --retry-failed``: import again exactly the files that failed, not their whole shards.

A 5,000-file shard with one bad file must not import 5,000 files again. For each planned shard
holding failed files (optionally only those failed with ``--error-code N``), the planner's
sharding over that shard's ledger builds small retry shards covering exactly those files; they
run through the same executor, limits, state and board as any shard. Before that, each failed
file is looked up in the bucket: a file replaced since planning (new generation) is retried as
it is now and flagged ``changed``; a file deleted since stays failed, flagged.

A shard that failed as a whole (its operation failed for good, or its start was refused) is
queued again whole: its URI is already the smallest one covering its files.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from bulkmover.errors import UsageError
from bulkmover.gcs.client import StorageClient
from bulkmover.outcomes.children import child_shards
from bulkmover.state.files import FileLedger, FileRef, Purpose
from bulkmover.state.runs import RunLedger
from bulkmover.state.store import StateStore

STAT_IN_FLIGHT = 32


@dataclass(frozen=True)
class RetryPlan:
    shards_requeued: int  # failed as a whole, queued again whole
    files: int  # failed files put in retry shards
    retry_shards: int
    changed: int  # of those, replaced in the bucket since planning
    gone: int  # failed files deleted from the bucket: not retried

    def line(self) -> str:
        parts = [f"{self.files:,} failed file(s) in {self.retry_shards:,} retry shard(s)"]
        if self.shards_requeued:
            parts.append(f"{self.shards_requeued:,} failed shard(s) whole")
        if self.changed:
            parts.append(f"{self.changed:,} replaced in the bucket since planning")
        if self.gone:
            parts.append(f"{self.gone:,} no longer in the bucket (left failed)")
        return "retrying " + "; ".join(parts)


def check_error_code(files: FileLedger, code: int) -> None:
    """UsageError naming the codes there are, when no failed file has ``code``."""
    codes = files.error_codes()
    if code not in codes:
        known = ", ".join(str(c) for c in sorted(codes)) or "none: no file has failed"
        raise UsageError(
            f"--error-code {code}: no failed file has that error code (codes of failed files:"
            f" {known}); see `bulkmover report CONFIG --failed`"
        )


async def prepare_retry(
    store: StateStore,
    storage: StorageClient,
    *,
    error_code: int | None = None,
    max_objects: int = 5000,
) -> RetryPlan:
    """Queue the failed work again (see the module docstring); every change committed."""
    runs: RunLedger = store.runs
    files = runs.files
    if error_code is not None:
        check_error_code(files, error_code)
    requeued = runs.retry_failed(error_code)
    failed = files.failed_files(error_code)
    by_home: dict[int, list[FileRef]] = defaultdict(list)
    for ref in failed:
        by_home[ref.home_id].append(ref)
    uris = {shard.id: shard.uri for shard in store.shards()}
    changed = gone = built = retried = 0
    for home, refs in by_home.items():
        bucket = uris[home][len("gs://") :].split("/", 1)[0]
        current = await _generations(storage, bucket, refs)
        moved = [
            (ref, gen) for ref, gen in zip(refs, current, strict=True) if gen != ref.generation
        ]
        if moved:
            files.flag_changed([ref for ref, _ in moved], [gen for _, gen in moved])
        changed += sum(1 for _, gen in moved if gen is not None)
        gone += sum(1 for _, gen in moved if gen is None)
        alive = [ref for ref, gen in zip(refs, current, strict=True) if gen is not None]
        if not alive:
            continue
        children = child_shards(
            uris[home], files.members(home), {ref.key for ref in alive}, max_objects
        )
        specs = [(c.uri, c.prefix, c.files) for c in children.shards if c.files]
        # A name no URI can single out cannot be retried on its own: it keeps its failure.
        files.add_children(home, Purpose.RETRY, specs)
        built += len(specs)
        retried += sum(len(c.files) for c in children.shards)
    return RetryPlan(requeued, retried, built, changed, gone)


async def _generations(
    storage: StorageClient, bucket: str, refs: list[FileRef]
) -> list[int | None]:
    """Each file's generation in the bucket now (None: deleted)."""
    gate = asyncio.Semaphore(STAT_IN_FLIGHT)

    async def one(ref: FileRef) -> int | None:
        async with gate:
            stat = await storage.stat(bucket, ref.name)
        return None if stat is None else stat.generation

    return list(await asyncio.gather(*(one(ref) for ref in refs)))
