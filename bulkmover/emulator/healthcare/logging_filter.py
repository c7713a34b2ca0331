"""The Logging query language, as far as readers of operation error logs use it.

Readers of operation error logs send filters in the Logging query language. The emulator
understands the part of it that such readers use and refuses the rest with 400 INVALID_ARGUMENT
(never a silent guess), so a filter that passes here means the same thing in the cloud:

- comparisons ``FIELD OP VALUE``, OP one of ``= != : >= <= > < =~ !~``; FIELD a dotted path such
  as ``operation.id``, ``resource.labels.dicom_store_id`` or ``jsonPayload.@type`` (a part with
  dots or spaces is quoted: ``labels."a.b"``); ``FIELD:*`` tests presence. ``severity`` compares
  by rank (names or numbers); ``timestamp`` and ``receiveTimestamp`` compare as instants (RFC 3339
  with any fraction and offset), not as strings; numbers compare as numbers. ``=`` is exact,
  ``:`` is a case-insensitive substring test, ``=~`` a regular expression search;
- a value list: ``operation.id=("1" OR "2")`` is ``operation.id="1" OR operation.id="2"``;
- ``NOT`` (or a leading ``-``), ``OR``, ``AND`` (or mere whitespace) and parentheses, with
  Logging's precedence rather than SQL's: NOT binds tightest, then OR, then AND, so
  ``a AND b OR c`` is ``a AND (b OR c)``. Operators are upper case, as in Logging.

>>> entry = {"operation": {"id": "42"}, "severity": "ERROR"}
>>> match_entry(parse_filter('operation.id=("41" OR "42") AND severity>=WARNING'), entry)
True
>>> match_entry(parse_filter('-severity=ERROR OR operation.id="42" AND NOT operation.id:4'), entry)
False
"""

from __future__ import annotations

import calendar
import functools
import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bulkmover.emulator.healthcare.rpc import ApiFailure, invalid

SEVERITIES = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}
MAX_FILTER_CHARS = 20_000  # Logging's documented limit on a query's length
SEVERITY = ("severity",)
OPERATION_ID = ("operation", "id")
TIME_FIELDS = {("timestamp",), ("receiveTimestamp",)}
ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
QUOTE_HINT = (
    'quote values holding spaces or ( ) " : = < > !, e.g. timestamp>="2026-01-01T00:00:00Z"'
)


# -- the filter's tree ------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """``FIELD OP VALUE``; ``key`` is the value parsed once for its field (rank, instant, regex)."""

    path: tuple[str, ...]
    op: str  # one of ORDERING, ":", "=~", "!~", or "present" for FIELD:*
    value: str
    key: int | re.Pattern[str] | None = None


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not
MATCH_ALL = And(())


# -- values: instants and severities ----------------------------------------------------------
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))"
)


@functools.lru_cache(maxsize=8192)
def instant_nanos(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (any offset, 0-9 fraction digits).

    The offset may lack its colon (``+0000``): google-cloud-logging's ``list_entries`` adds
    such a ``timestamp>=`` bound (the last 24 hours) to a filter that has none, and Logging
    takes it.

    >>> instant_nanos("2026-01-01T01:00:00.5+01:00") == instant_nanos("2026-01-01T00:00:00.500Z")
    True
    >>> instant_nanos("2026-01-01T00:00:00.5+0000") == instant_nanos("2026-01-01T00:00:00.500Z")
    True
    """
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and hour < 24 and minute < 60 and second < 61):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if m[9]:
        offset = (int(m[10]) * 60 + int(m[11])) * 60
        seconds -= offset if m[9] == "+" else -offset
    return seconds * 10**9 + int((m[7] or "").ljust(9, "0"))


def severity_rank(value: Any) -> int | None:
    """The rank of a severity name (any case) or number; None for anything else."""
    text = str(value).strip().upper()
    if text in SEVERITIES:
        return SEVERITIES[text]
    return int(text) if text.isdigit() else None


# -- lexing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # word, string, op, (, ), AND, OR, NOT, end
    text: str
    start: int
    end: int


_LEXEME = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|>=|<=|=~|!~|=|:|>|<)|(?P<paren>[()])'
    r'|(?P<word>[^\s()"=!<>:]+)',
    re.DOTALL,
)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def unquote(literal: str) -> str:
    """A quoted string's text: JSON escapes; any other ``\\c`` stays as written (regexes)."""
    out: list[str] = []
    body, i = literal[1:-1], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append(ch + nxt)
            i += 2
    return "".join(out)


def _lex(text: str) -> Iterator[Token]:
    pos, previous = 0, ""
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            yield Token("end", "", pos, pos)
            return
        # A leading "-" negates, except where a value is due (after an operator: -1 is a value).
        if text[pos] == "-" and previous != "op":
            yield Token("NOT", "-", pos, pos + 1)
            pos, previous = pos + 1, "NOT"
            continue
        m = _LEXEME.match(text, pos)
        if m is None:
            what = "an unterminated string" if text[pos] == '"' else repr(text[pos])
            raise invalid(f"unsupported filter: {what} at offset {pos}; {QUOTE_HINT}")
        kind = m.lastgroup or "word"
        lexeme = m.group()
        if kind == "paren":
            kind = lexeme
        elif kind == "word" and lexeme in ("AND", "OR", "NOT"):
            kind = lexeme
        yield Token(kind, lexeme, pos, m.end())
        pos, previous = m.end(), kind


# -- parsing ----------------------------------------------------------------------------------
class _Parser:
    """Recursive descent over Logging's precedence: AND (or space) < OR < NOT < parentheses."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_lex(text))
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, token: Token, wanted: str, hint: str = "") -> ApiFailure:
        near = repr(self.text[token.start : token.start + 40]) if token.kind != "end" else "the end"
        where = f"at offset {token.start} ({near})"
        return invalid(
            f"unsupported filter: expected {wanted} {where}{'; ' + hint if hint else ''}"
        )

    def expect(self, kind: str, wanted: str) -> Token:
        if self.peek().kind != kind:
            raise self.fail(self.peek(), wanted)
        return self.take()

    def query(self) -> Node:
        if self.peek().kind == "end":
            return MATCH_ALL
        node = self.conjunction(self.term)
        if self.peek().kind != "end":
            raise self.fail(self.peek(), "AND, OR or the end of the filter", QUOTE_HINT)
        return node

    # The same boolean grammar serves restrictions and value lists; ``leaf`` tells them apart.
    def conjunction(self, leaf: Callable[[], Node]) -> Node:
        items = [self.disjunction(leaf)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
            elif kind not in ("word", "string", "(", "NOT"):
                break
            items.append(self.disjunction(leaf))
        return items[0] if len(items) == 1 else And(tuple(items))

    def disjunction(self, leaf: Callable[[], Node]) -> Node:
        items = [self.negation(leaf)]
        while self.peek().kind == "OR":
            self.take()
            items.append(self.negation(leaf))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def negation(self, leaf: Callable[[], Node]) -> Node:
        if self.peek().kind == "NOT":
            self.take()
            return Not(self.negation(leaf))
        if self.peek().kind == "(":
            self.take()
            node = self.conjunction(leaf)
            self.expect(")", "')'")
            return node
        return leaf()

    def term(self) -> Node:
        start = self.peek()
        if start.kind == "string":
            raise invalid(
                f"unsupported filter: a bare value {start.text[:40]} (a global search) at offset "
                f"{start.start}; name the field, e.g. jsonPayload.source:{start.text[:40]}"
            )
        if start.kind == "word" and start.text in ("and", "or", "not"):
            raise invalid(
                f"unsupported filter: {start.text!r} at offset {start.start}; Logging's boolean "
                f"operators are upper case: AND, OR, NOT"
            )
        path = self.path()
        op = self.expect("op", "a comparison operator (= != : >= <= > < =~ !~) after the field")
        if self.peek().kind == "(":
            return self.negation(lambda: self.value(path, op.text))
        return self.value(path, op.text)

    def path(self) -> tuple[str, ...]:
        """FIELD: dotted words and quoted parts, written without spaces (``labels."a.b"``)."""
        tokens = [self.expect("word", "a field name such as operation.id")]
        while self._continues(tokens[-1], self.peek()):
            tokens.append(self.take())
        parts: list[str] = []
        for i, token in enumerate(tokens):
            if token.kind == "string":
                parts.append(unquote(token.text))
                continue
            text = token.text[1:] if i > 0 else token.text  # the dot after a quoted part
            text = text[:-1] if i + 1 < len(tokens) else text  # the dot before a quoted part
            parts.extend(text.split("."))
        if "" in parts:
            name = self.text[tokens[0].start : tokens[-1].end]
            raise invalid(f"unsupported filter: field name {name!r} has an empty part")
        return tuple(parts)

    @staticmethod
    def _continues(last: Token, nxt: Token) -> bool:
        """Whether ``nxt`` goes on with ``last``'s field name (``a."b"`` or ``"b".c``)."""
        if nxt.start != last.end:
            return False
        if last.kind == "word":
            return last.text.endswith(".") and nxt.kind == "string"
        return nxt.kind == "word" and nxt.text.startswith(".")

    def value(self, path: tuple[str, ...], op: str) -> Node:
        token = self.take()
        if token.kind not in ("word", "string"):
            raise self.fail(token, f"a value after {'.'.join(path)}{op}", QUOTE_HINT)
        if token.kind == "word" and token.text == "*" and op == ":":
            return Comparison(path, "present", "*")
        text = unquote(token.text) if token.kind == "string" else token.text
        return comparison(path, op, text)


def comparison(path: tuple[str, ...], op: str, value: str) -> Comparison:
    """A comparison with its value parsed for the field; 400 for a value the field cannot take."""
    field = ".".join(path)
    if op in ("=~", "!~"):
        try:
            return Comparison(path, op, value, re.compile(value))
        except re.error as exc:
            raise invalid(f"invalid regular expression {value!r} for {field}: {exc}") from None
    if op in ORDERING and path == SEVERITY:
        rank = severity_rank(value)
        if rank is None:
            names = ", ".join(SEVERITIES)
            raise invalid(f"invalid severity {value!r}: use one of {names} or a number")
        return Comparison(path, op, value, rank)
    if op in ORDERING and path in TIME_FIELDS:
        nanos = instant_nanos(value)
        if nanos is None:
            raise invalid(
                f"invalid time {value!r} for {field}: quote an RFC 3339 time, "
                f'e.g. "2026-01-01T00:00:00Z"'
            )
        return Comparison(path, op, value, nanos)
    return Comparison(path, op, value)


def parse_filter(text: str) -> Node:
    """The filter's tree; INVALID_ARGUMENT for what the emulator does not understand."""
    if len(text) > MAX_FILTER_CHARS:
        raise invalid(f"filter is {len(text)} characters long; Logging allows {MAX_FILTER_CHARS}")
    try:
        return _Parser(text).query()
    except RecursionError:
        raise invalid("unsupported filter: nested too deeply; flatten its parentheses") from None


# -- matching ---------------------------------------------------------------------------------
def _lookup(entry: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entry
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def _sortable(actual: Any, wanted: str) -> tuple[Any, Any]:
    """Both sides as numbers when the field holds a number and the value reads as one."""
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            return float(actual), float(wanted)
        except ValueError:
            pass
    if isinstance(actual, bool):
        return _text(actual), wanted.lower()
    return _text(actual), wanted


def _compare(c: Comparison, actual: Any) -> bool:
    if isinstance(actual, list):
        if c.op in ("!=", "!~"):
            return all(_compare(c, item) for item in actual)
        return any(_compare(c, item) for item in actual)
    if c.op == ":":
        return c.value.lower() in _text(actual).lower()
    if isinstance(c.key, re.Pattern):
        found = c.key.search(_text(actual)) is not None
        return found if c.op == "=~" else not found
    if isinstance(c.key, int):
        left = severity_rank(actual) if c.path == SEVERITY else instant_nanos(_text(actual))
        if left is None:
            return c.op == "!="
        return ORDERING[c.op](left, c.key)
    left, right = _sortable(actual, c.value)
    return ORDERING[c.op](left, right)


def match_entry(node: Node, entry: dict[str, Any]) -> bool:
    """Whether ``entry`` (a LogEntry as JSON) satisfies the filter's tree."""
    if isinstance(node, And):
        return all(match_entry(item, entry) for item in node.items)
    if isinstance(node, Or):
        return any(match_entry(item, entry) for item in node.items)
    if isinstance(node, Not):
        return not match_entry(node.item, entry)
    actual = _lookup(entry, node.path)
    if actual is None and node.path == SEVERITY:
        actual = "DEFAULT"  # LogEntry's default severity
    if node.op == "present":
        return actual is not None
    if actual is None:
        return node.op in ("!=", "!~")
    return _compare(node, actual)


def pinned_operation_ids(node: Node) -> frozenset[str] | None:
    """The operation ids outside which nothing can match, or None when the filter pins none.

    >>> sorted(pinned_operation_ids(parse_filter('severity=ERROR operation.id=("1" OR "2")')))
    ['1', '2']
    """
    if isinstance(node, Comparison):
        return frozenset([node.value]) if node.path == OPERATION_ID and node.op == "=" else None
    if isinstance(node, Or):
        union: set[str] = set()
        for item in node.items:
            ids = pinned_operation_ids(item)
            if ids is None:
                return None  # one branch may match any operation
            union |= ids
        return frozenset(union)
    if isinstance(node, And):
        common: frozenset[str] | None = None
        for item in node.items:
            ids = pinned_operation_ids(item)
            if ids is not None:
                common = ids if common is None else common & ids
        return common
    return None
