"""Cloud Logging v2 ``entries:list`` over the operations' error entries, on the same port.

The filter language is ``logging_filter``'s.

A filter that pins operation ids (``operation.id="1"``, or a list of them, under AND) reads only
those operations' rows. An entry becomes visible ``--log-ingestion-delay`` (plus jitter) seconds
after it was written, because Logging is eventually consistent and readers must cope with entries
arriving after the operation ended. A page token names the last row read, so entries becoming
visible meanwhile shift no page; one request reads at most SCAN_BUDGET rows and may then answer
a short or empty page with a token, which Logging also does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare.db import Database
from bulkmover.emulator.healthcare.logging_filter import (
    Node,
    match_entry,
    parse_filter,
    pinned_operation_ids,
)
from bulkmover.emulator.healthcare.requests import (
    decode_token,
    encode_token,
    json_response,
    read_json,
)
from bulkmover.emulator.healthcare.rpc import invalid
from bulkmover.emulator.healthcare.service import service_of
from bulkmover.emulator.healthcare.views import render_log_entry

SCAN_BUDGET = 20_000  # rows examined per request; past it the page ends early, with a token
CHUNK = 1_000  # rows read from the database at a time
LIST_FIELDS = {
    "resourceNames": list,
    "projectIds": list,
    "filter": str,
    "orderBy": str,
    "pageSize": int,
    "pageToken": str,
}


# -- the handler ------------------------------------------------------------------------------
def _projects(body: dict[str, Any]) -> list[str]:
    names = body.get("resourceNames") or [f"projects/{p}" for p in body.get("projectIds", [])]
    if not names:
        raise invalid('resourceNames is required, e.g. {"resourceNames": ["projects/my-project"]}')
    projects: list[str] = []
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"projects/[^/]+", name):
            raise invalid(
                f"unsupported resource name {name!r}: the emulator keeps logs per project "
                f"(projects/PROJECT_ID)"
            )
        projects.append(name.split("/", 1)[1])
    return projects


def _cursor(token: str, descending: bool) -> int | None:
    """The last row id a page token stands for; it must come from a listing in the same order."""
    position = decode_token(token)
    if not position:
        return None
    m = re.fullmatch(r"([ad])(\d+)", position)
    if m is None:
        raise invalid("invalid pageToken: pass the nextPageToken of a previous page")
    if (m[1] == "d") != descending:
        raise invalid("pageToken comes from a listing in the other orderBy: keep orderBy unchanged")
    return int(m[2])


@dataclass(frozen=True)
class Page:
    entries: list[dict[str, Any]]
    next_cursor: int | None  # the last row id this page stands for; None: the listing ends


def read_page(
    db: Database,
    projects: Sequence[str],
    tree: Node,
    *,
    size: int,
    cursor: int | None,
    descending: bool,
    now: float,
    budget: int = SCAN_BUDGET,
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Page:
    """Up to ``size`` entries after row ``cursor`` that match ``tree`` and are visible at ``now``.

    It reads on until one match past the page (so a full last page carries no token) or until
    ``budget`` rows were examined (then a short, maybe empty, page with a token to read on from).
    """
    op_ids = pinned_operation_ids(tree)
    wanted = sorted(op_ids) if op_ids is not None else None
    matched: list[tuple[int, dict[str, Any]]] = []
    examined = 0
    while examined < budget:
        limit = min(CHUNK, budget - examined)
        rows = db.log_entries(
            projects,
            wanted,
            visible_by=now,
            after_id=cursor,
            descending=descending,
            limit=limit,
        )
        for row in rows:
            examined += 1
            cursor = int(row["id"])
            entry = json.loads(row["entry"])
            if render is not None:
                entry = render(entry)  # as the knobs spell what Google does not document
            if match_entry(tree, entry):
                matched.append((cursor, entry))
                if len(matched) > size:
                    return Page([e for _, e in matched[:size]], matched[size - 1][0])
        if len(rows) < limit:
            return Page([e for _, e in matched], None)
    return Page([e for _, e in matched], cursor)


async def list_entries(request: web.Request) -> web.Response:
    svc = service_of(request)
    body = await read_json(request, LIST_FIELDS)
    projects = _projects(body)
    tree = parse_filter(body.get("filter", ""))
    order = " ".join(str(body.get("orderBy", "timestamp asc")).lower().split())
    if order not in ("timestamp asc", "timestamp desc", "timestamp"):
        raise invalid(f"unsupported orderBy {order!r}: use 'timestamp asc' or 'timestamp desc'")
    descending = order.endswith("desc")
    page = read_page(
        svc.db,
        projects,
        tree,
        size=max(1, min(int(body.get("pageSize") or 50), 1000)),
        cursor=_cursor(body.get("pageToken", ""), descending),
        descending=descending,
        now=time.time(),
        render=lambda entry: render_log_entry(
            entry, labels=svc.knobs.log_labels, log_name=svc.knobs.log_name
        ),
    )
    result: dict[str, Any] = {"entries": page.entries} if page.entries else {}
    if page.next_cursor is not None:
        result["nextPageToken"] = encode_token(f"{'d' if descending else 'a'}{page.next_cursor}")
    return json_response(result)
