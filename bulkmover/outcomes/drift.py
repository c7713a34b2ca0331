"""Which files of a shard changed in the bucket since planning (its counts were not the plan's).

An import operation whose counters add up to more or fewer files than its shard planned ran on
a bucket that changed: files were added, deleted or replaced. The shard's URI is listed again
(its literal prefix, the API's wildcard rules) and every ledger file compared by generation: a
replaced file is flagged ``changed``; a deleted one cannot have been imported.
"""

from __future__ import annotations

from typing import Any, Protocol

from bulkmover.gcs.wildcard import parse_wildcard

FIELDS = "items(name,generation),nextPageToken"


class Lister(Protocol):
    async def list_page(self, bucket: str, params: dict[str, str]) -> dict[str, Any]: ...


async def generations(storage: Lister, uri: str) -> dict[str, int]:
    """Every object ``uri`` matches now, with its generation."""
    wildcard = parse_wildcard(uri)
    found: dict[str, int] = {}
    params = {"prefix": wildcard.literal_prefix, "fields": FIELDS, "maxResults": "1000"}
    while True:
        page = await storage.list_page(wildcard.bucket, params)
        for item in page.get("items") or []:
            name = str(item.get("name", ""))
            if wildcard.matches(name):
                found[name] = int(item.get("generation") or 0)
        token = page.get("nextPageToken")
        if not token:
            return found
        params = {**params, "pageToken": str(token)}
