"""The state file (SQLite): plans, shards and the per-file ledger. See ``schema`` for the layout."""

from bulkmover.state.staging import ListingStage
from bulkmover.state.store import (
    LedgerObject,
    PlanDraft,
    PlanRecord,
    PlanWriter,
    Shard,
    ShardState,
    StateStore,
    Totals,
    UnplannedObject,
)

__all__ = [
    "LedgerObject",
    "ListingStage",
    "PlanDraft",
    "PlanRecord",
    "PlanWriter",
    "Shard",
    "ShardState",
    "StateStore",
    "Totals",
    "UnplannedObject",
]
