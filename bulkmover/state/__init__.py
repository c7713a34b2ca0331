"""The state file (SQLite): plans, shards and the per-file ledger. See ``schema`` for the layout."""

from bulkmover.state.runs import Event, Recovered, RunLedger, RunTotals, ShardRun
from bulkmover.state.staging import ListingStage
from bulkmover.state.store import (
    KeptChanges,
    KeptFile,
    LedgerObject,
    PlanDraft,
    PlanRecord,
    PlanTotals,
    PlanWriter,
    Shard,
    ShardState,
    StateStore,
    UnplannedObject,
)
from bulkmover.state.transaction import transaction

__all__ = [
    "Event",
    "KeptChanges",
    "KeptFile",
    "LedgerObject",
    "ListingStage",
    "PlanDraft",
    "PlanRecord",
    "PlanTotals",
    "PlanWriter",
    "Recovered",
    "RunLedger",
    "RunTotals",
    "Shard",
    "ShardRun",
    "ShardState",
    "StateStore",
    "UnplannedObject",
    "transaction",
]
