"""Planning an import: listing the source, prefix-group sharding, the plan and its summary."""

from bulkmover.planning.sharding import Limits, Listed, Sharding, ShardSpec, plan_shards

__all__ = ["Limits", "Listed", "ShardSpec", "Sharding", "plan_shards"]
