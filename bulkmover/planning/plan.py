"""``bulkmover plan``: list the source, shard it, check the shards, write plan and ledger.

The steps, each bounded in memory:

1. refuse early if the state file already holds a plan (unless replanning);
2. list the source concurrently into a scratch file beside the state file (``ListingStage``);
3. on ``--replan``, give each shard that ran (it is kept, with its history) every listed name
   its URI matches: the names of its ledger, and names added under it since it ran;
4. shard the other names, grouped by directory (``sharding.plan_shards``): no new shard's URI
   matches a name a kept shard's URI matches;
5. write plan, shards and the per-file ledger in one transaction, each shard's ledger rows being
   its URI evaluated over the listing in SQL (``sql_glob``, the API's semantics), and checked to
   be exactly what the sharder meant (a mismatch is a bug: nothing is written). On replan, the
   kept shards' ledgers are brought to the listing first (``PlanWriter.reconcile_kept``): files
   gone from the bucket leave them, replaced ones are flagged ``changed``, added ones join; the
   added and replaced files of a kept shard that ran are imported by child shards of it
   (purpose ``replan``, the planner's sharding over its ledger: URIs that single them out).

So after any change to the bucket, every name the source matches is imported by exactly one
planned shard's URI and counted once, in that shard's ledger.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bulkmover.config import Config
from bulkmover.errors import PlanError, StateError
from bulkmover.gcs.client import storage_client
from bulkmover.gcs.listing import ListingStats, list_matches
from bulkmover.gcs.wildcard import Wildcard, first_wildcard, parse_wildcard, sql_glob
from bulkmover.planning.sharding import Limits, MemoryListing, Sharding, ShardSpec, plan_shards
from bulkmover.state import (
    KeptChanges,
    KeptFile,
    ListingStage,
    PlanDraft,
    PlanTotals,
    PlanWriter,
    Shard,
    StateStore,
)
from bulkmover.state.lock import writer_lock

UNADDRESSABLE_REASON = "name holds '*' or '?': no import URI can address it without matching others"


class SourceLister(Protocol):
    """Lists what ``source`` matches into ``stage`` (the bucket; tests pass their own)."""

    async def __call__(
        self, config: Config, source: Wildcard, stage: ListingStage, stats: ListingStats
    ) -> None: ...


class PlanProgress(Protocol):
    """What the planner tells a live view (see ``planning.progress``)."""

    def listing(self, stats: ListingStats) -> AbstractContextManager[object]: ...

    def phase(self, text: str) -> AbstractContextManager[object]: ...


@dataclass(frozen=True)
class PlanOutcome:
    """A written plan: every shard in the state file, and how the run went."""

    source: str
    state_path: Path
    shards: list[Shard]
    totals: PlanTotals
    new_shards: int
    kept_shards: int
    listed_objects: int
    unplanned: list[str] = field(default_factory=list)
    list_seconds: float = 0.0
    match_glob_note: str = ""
    """Why the listing did not send ``matchGlob`` although it would have paid ("": it did, or
    it was not worth it)."""
    seconds: float = 0.0
    limits: Limits = Limits(0, 0)
    kept_changes: KeptChanges = KeptChanges()
    """What changed in the bucket under the kept shards since they ran (``--replan``)."""


def plan(
    config: Config,
    *,
    replan: bool = False,
    progress: PlanProgress | None = None,
    lister: SourceLister | None = None,
) -> PlanOutcome:
    """Run the whole planning (blocking; the listing runs on its own event loop)."""
    return asyncio.run(plan_async(config, replan=replan, progress=progress, lister=lister))


async def plan_async(
    config: Config,
    *,
    replan: bool = False,
    progress: PlanProgress | None = None,
    lister: SourceLister | None = None,
) -> PlanOutcome:
    """Plan under the state file's writer lock (see ``bulkmover.state.lock``)."""
    with writer_lock(config.state):
        return await _plan(config, replan=replan, progress=progress, lister=lister or _list)


async def _plan(
    config: Config, *, replan: bool, progress: PlanProgress | None, lister: SourceLister
) -> PlanOutcome:
    started = time.monotonic()
    settings = config.import_
    source = settings.wildcard
    limits = Limits(settings.max_objects_per_shard, settings.max_bytes_per_shard)
    keep_ran = _check_existing(config.state, source, replan)
    stats = ListingStats(str(source))
    with ListingStage(config.state.with_name(config.state.name + ".listing")) as stage:
        with progress.listing(stats) if progress else nullcontext():
            await lister(config, source, stage, stats)
        matched, matched_bytes = stage.count()
        if not matched:
            raise PlanError(
                f"nothing matches {source} ({stats.seen} objects listed under"
                f" gs://{source.bucket}/{source.literal_prefix}); check the path and the"
                " extension in import.source"
            )
        if keep_ran:
            with StateStore.open(config.state, create=False) as store:
                _take_kept(stage, store.kept_shards(), store)
        with progress.phase("sharding") if progress else nullcontext():
            sharding = plan_shards(source, stage, limits)
        _check_unaddressable(sharding, source, settings.unaddressable == "skip")
        draft = PlanDraft(
            source=str(source),
            max_objects_per_shard=limits.max_objects,
            max_bytes_per_shard=limits.max_bytes,
            listed_objects=stats.seen,
            matched_objects=matched,
            matched_bytes=matched_bytes,
            list_seconds=stats.elapsed,
        )
        sealed = stage.seal()
        with progress.phase("writing the ledger") if progress else nullcontext():
            with StateStore.open(config.state) as store:
                with store.writing_plan(draft, sealed) as writer:
                    changes = _write(writer, sharding, keep_ran, limits)
                    writer.seconds = time.monotonic() - started
                shards = list(store.shards())
                totals = store.totals()
    return PlanOutcome(
        source=str(source),
        state_path=config.state,
        shards=shards,
        totals=totals,
        new_shards=writer.new_shards,
        kept_shards=writer.kept,
        listed_objects=stats.seen,
        unplanned=sharding.unaddressable,
        list_seconds=stats.elapsed,
        match_glob_note=stats.match_glob_note,
        seconds=writer.seconds,
        limits=limits,
        kept_changes=changes,
    )


async def _list(config: Config, source: Wildcard, stage: ListingStage, stats: ListingStats) -> None:
    """List what ``source`` matches into ``stage`` (one shared session, our retries)."""
    storage = config.storage
    async with storage_client(config, storage.list_concurrency) as client:
        await list_matches(
            source,
            client,
            stage.add,
            concurrency=storage.list_concurrency,
            stats=stats,
            match_glob=storage.match_glob,
        )


def _take_kept(stage: ListingStage, kept: list[Shard], store: StateStore) -> None:
    """Each kept shard owns the listed names of its ledger, then every other listed name its
    URI matches (added under it since it ran): the sharder leaves them all out."""
    for shard in kept:
        stage.take_names((o.name for o in store.ledger(shard.id)), shard.id)
    for shard in kept:
        glob = sql_glob(shard.uri.split("/", 3)[3])
        stage.take_matching(shard.id, shard.prefix, glob.glob, glob.slashes)
    stage.recount_taken()


def _write(writer: PlanWriter, sharding: Sharding, keep_ran: bool, limits: Limits) -> KeptChanges:
    """Shards, their checked ledger rows, and the unplanned names, inside the plan transaction;
    on replan, the kept shards' ledgers brought to the listing first."""
    writer.copy_directories_from_stage()
    changes = KeptChanges()
    if keep_ran:
        changes = writer.reconcile_kept()
        children = _import_kept_files(writer, writer.files_to_import(), limits)
        writer.recount_kept()
        changes = KeptChanges(changes.added, changes.replaced, changes.gone, children)
    for spec in sharding.shards:
        shard_id = writer.add_shard(spec.uri, spec.prefix, spec.objects, spec.bytes)
        _copy_checked(writer, shard_id, spec, keep_ran)
    if sharding.unaddressable:
        writer.add_unplanned_from_stage(sharding.unaddressable, UNADDRESSABLE_REASON)
    return changes


def _import_kept_files(writer: PlanWriter, files: list[KeptFile], limits: Limits) -> int:
    """Child shards importing the added and replaced files of kept shards that ran; returns how
    many were made.

    Children are the planner's sharding over the kept shard's ledger, where every other file is
    taken, so each child URI matches exactly its files (as for ``--retry-failed``). Children of
    the shard that had not started are cut again the same way over the ledger as it is now (a
    file added since may match their URIs), without the files imported here: so pending
    children stay pairwise disjoint, and each file is counted by one operation. A name no URI
    can single out (it holds ``*`` or ``?``) is imported by the kept shard's own URI again.
    """
    by_home: dict[int, list[KeptFile]] = {}
    for file in files:
        by_home.setdefault(file.home_id, []).append(file)
    made = 0
    for home, todo in by_home.items():
        uri = writer.shard_uri(home)
        ledger = writer.kept_ledger(home)
        taken = {f.name for f in todo}
        for purpose, members in writer.drop_pending_children(home):
            rest = [f for f in members if f.name not in taken]
            for child_uri, prefix, group in _children(uri, ledger, rest, limits):
                writer.add_child(home, child_uri, prefix, group, purpose)
        for child_uri, prefix, group in _children(uri, ledger, todo, limits):
            writer.add_child(home, child_uri, prefix, group)
            made += 1
    return made


def _children(
    uri: str,
    ledger: list[tuple[int, str, str, int, int, str]],
    todo: list[KeptFile],
    limits: Limits,
) -> list[tuple[str, str, list[KeptFile]]]:
    """``(uri, prefix, files)`` of child shards of ``uri`` covering exactly ``todo``."""
    if not todo:
        return []
    wanted = {f.name: f for f in todo}
    rows = [(name, size, name not in wanted) for _, _, name, size, _, _ in ledger]
    sharding = plan_shards(parse_wildcard(uri), MemoryListing(rows), limits)
    children: list[tuple[str, str, list[KeptFile]]] = []
    for spec in sharding.shards:
        matcher = parse_wildcard(spec.uri)
        members = [f for name, f in wanted.items() if matcher.matches(name)]
        if members:
            children.append((spec.uri, spec.prefix, members))
    if sharding.unaddressable:
        # No URI singles these out (a name holds '*' or '?'): the kept shard's own URI imports
        # them, with its other files, which the store holds already (skipped as duplicates).
        source = parse_wildcard(uri)
        prefix = source.pattern[: first_wildcard(source.pattern)]
        children.append((uri, prefix, [wanted[name] for name in sharding.unaddressable]))
    return children


def _check_existing(path: Path, source: Wildcard, replan: bool) -> bool:
    """Refuse to overwrite a plan without ``--replan``; True if shards that ran must be kept."""
    if not path.exists():
        return False
    with StateStore.open(path, create=False) as store:
        latest = store.latest_plan()
        if latest is None:
            return False
        totals = store.totals()
        ran = store.shards_that_ran()
        unsettled = store.unsettled_shards()
    if not replan:
        raise StateError(
            f"{path} already holds a plan ({totals.shards} shards, {totals.objects} objects,"
            f" made {latest.created_at[:19].replace('T', ' ')} UTC); use --replan to plan"
            " again (shards that already ran are kept), or point `state:` at a new file"
        )
    if unsettled:
        raise StateError(
            f"{path}: {unsettled} shard(s) are still running or having their files settled (a"
            " `run` was interrupted); run `bulkmover run CONFIG` to finish them, then plan"
            " --replan (a replan must know which files their operations imported)"
        )
    if ran and latest.source != str(source):
        raise StateError(
            f"{path} was planned for {latest.source} and {ran} of its shards already ran;"
            f" the config now says {source}: use a new state file for another source"
        )
    return ran > 0


def _copy_checked(writer: PlanWriter, shard_id: int, spec: ShardSpec, taken: bool) -> None:
    """Write a shard's ledger rows: its URI evaluated over the listing, in SQL (GLOB).

    Raises PlanError (and nothing is written) unless that is exactly what the sharder planned;
    disjointness and cover then follow, since the sharder's groups partition the listing.
    """
    glob = sql_glob(spec.pattern)
    objects, nbytes = writer.copy_from_stage(shard_id, spec.prefix, glob.glob, glob.slashes)
    if (objects, nbytes) != (spec.objects, spec.bytes):
        raise PlanError(
            f"internal error: shard {spec.uri} matches {objects} objects ({nbytes} bytes) but"
            f" {spec.objects} ({spec.bytes} bytes) were planned; nothing was written, please"
            " report this"
        )
    if taken:
        clash = writer.taken_in_stage(spec.prefix, glob.glob, glob.slashes)
        if clash is not None:
            raise PlanError(
                f"internal error: new shard {spec.uri} would also import {clash}, which a shard"
                " that already ran holds; nothing was written, please report this"
            )


def _check_unaddressable(sharding: Sharding, source: Wildcard, skip: bool) -> None:
    names = sharding.unaddressable
    if not names or skip:
        return
    count = len(names)
    raise PlanError(
        f"{count} matched object{'s' * (count > 1)} cannot be imported by any shard URI without"
        f" also matching others (a name holds '*' or '?'), e.g. gs://{source.bucket}/{names[0]};"
        " rename them, or set import.unaddressable: skip to plan the rest (they are then"
        " recorded as unplanned in the state file)"
    )
