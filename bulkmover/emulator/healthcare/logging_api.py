"""Cloud Logging v2 ``entries:list`` over the operations' error entries, on the same port.

The filter language is the part of the Logging query language that readers of these entries
use: terms ``FIELD OP VALUE`` joined by ``AND`` (or by spaces), with OP one of ``=``, ``!=``,
``:`` (has), ``>=``, ``<=``, ``>``, ``<``; FIELD a dotted path such as ``operation.id``,
``jsonPayload.@type`` or ``resource.type``; severities compare by rank.

>>> match_entry(parse_filter('operation.id="42" AND severity>=WARNING'),
...             {"operation": {"id": "42"}, "severity": "ERROR"})
True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare.requests import (
    decode_token,
    encode_token,
    json_response,
    read_json,
)
from bulkmover.emulator.healthcare.rpc import invalid
from bulkmover.emulator.healthcare.service import service_of

LIST_FIELDS = {
    "resourceNames": list,
    "projectIds": list,
    "filter": str,
    "orderBy": str,
    "pageSize": int,
    "pageToken": str,
}
SEVERITIES = [
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
]
_TERM = re.compile(
    r"\s*(?P<field>[A-Za-z_@][\w.@/]*)\s*(?P<op>!=|>=|<=|=|:|>|<)\s*"
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^\s()"]+)\s*'
)


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str


def parse_filter(text: str) -> list[Term]:
    """Terms of a conjunction; INVALID_ARGUMENT for what the emulator does not understand."""
    terms: list[Term] = []
    rest = text.strip()
    while rest:
        match = _TERM.match(rest)
        if match is None:
            raise invalid(
                f"unsupported filter near {rest[:60]!r}: the emulator understands terms "
                f'FIELD=VALUE (also != : >= <= > <) joined by AND, e.g. operation.id="123"'
            )
        value = match["value"]
        if value.startswith('"'):
            value = json.loads(value)
        terms.append(Term(match["field"], match["op"], value))
        rest = rest[match.end() :]
        if rest.startswith("AND ") or rest.startswith("AND\t"):
            rest = rest[4:].lstrip()
        elif rest.startswith(("OR ", "NOT ", "(", "-")):
            raise invalid(f"unsupported filter operator near {rest[:30]!r}: only AND is understood")
    return terms


def _lookup(entry: dict[str, Any], field: str) -> Any:
    value: Any = entry
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(actual: Any, op: str, wanted: str, severity: bool) -> bool:
    if actual is None:
        return op == "!="
    if severity and wanted.upper() in SEVERITIES and str(actual) in SEVERITIES:
        left, right = SEVERITIES.index(str(actual)), SEVERITIES.index(wanted.upper())
    else:
        left, right = str(actual), wanted  # type: ignore[assignment]
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == ":":
        return str(wanted).lower() in str(actual).lower()
    if op == ">=":
        return left >= right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left < right


def match_entry(terms: list[Term], entry: dict[str, Any]) -> bool:
    return all(
        _compare(_lookup(entry, t.field), t.op, t.value, t.field == "severity") for t in terms
    )


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


async def list_entries(request: web.Request) -> web.Response:
    svc = service_of(request)
    body = await read_json(request, LIST_FIELDS)
    projects = _projects(body)
    terms = parse_filter(body.get("filter", ""))
    order = " ".join(str(body.get("orderBy", "timestamp asc")).lower().split())
    if order not in ("timestamp asc", "timestamp desc", "timestamp"):
        raise invalid(f"unsupported orderBy {order!r}: use 'timestamp asc' or 'timestamp desc'")
    size = int(body.get("pageSize") or 50)
    size = max(1, min(size, 1000))
    token = decode_token(body.get("pageToken", ""))
    if token and not token.isdigit():
        raise invalid("invalid pageToken: pass the nextPageToken of a previous page")
    op_ids = [t.value for t in terms if t.field == "operation.id" and t.op == "="]
    rows = svc.db.log_entries(projects, op_ids[0] if op_ids else None)
    if order.endswith("desc"):
        rows.reverse()
    start = int(token or 0)
    matched: list[dict[str, Any]] = []
    position = start
    for position in range(start, len(rows)):
        entry = json.loads(rows[position]["entry"])
        if match_entry(terms, entry):
            matched.append(entry)
            if len(matched) > size:
                break
    result: dict[str, Any] = {"entries": matched[:size]} if matched else {}
    if len(matched) > size:
        result["nextPageToken"] = encode_token(str(position))
    return json_response(result)
