"""Planning an import: listing the source, prefix-group sharding, the plan and its summary."""

from bulkmover.planning.sharding import (
    Limits,
    Listed,
    Listing,
    MemoryListing,
    Sharding,
    ShardSpec,
    plan_shards,
)

__all__ = [
    "Limits",
    "Listed",
    "Listing",
    "MemoryListing",
    "ShardSpec",
    "Sharding",
    "plan_shards",
]
