"""The ``multipart/related`` body of a multipart upload, split as Cloud Storage splits it.

RFC 2046 asks for CRLF line breaks, but clients send bare LF too (gcsfs builds its body by hand
with ``\\n``) and the real service, like fake-gcs-server, accepts both. The line break of the
opening delimiter decides which one the body uses, so a part whose bytes end with ``\\r`` or
``\\n`` keeps them.

>>> [p.data for p in split_multipart(b"--b\\nA: 1\\n\\n{}\\n--b\\n\\nx\\r\\n\\n--b--", "b")]
[b'{}', b'x\\r\\n']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bulkmover.emulator.gcs.errors import parse_error


@dataclass(frozen=True)
class Part:
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    data: bytes = b""


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.strip():
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise parse_error(f"Malformed multipart body: header line {line[:100]!r}.")
        headers[name.strip().lower()] = value.strip()
    return headers


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """The parts of ``body``; a 400 parseError when it is not a complete multipart body."""
    if not boundary:
        raise parse_error("Malformed multipart body: the Content-Type has no boundary.")
    opening = b"--" + boundary.encode("latin-1")
    start = 0 if body.startswith(opening) else body.find(b"\n" + opening)
    if start < 0:
        raise parse_error("Malformed multipart body: the opening boundary is missing.")
    if start:
        start += 1  # past the preamble's line break
    line_end = body.find(b"\n", start)
    if line_end < 0:
        raise parse_error("Malformed multipart body: nothing after the opening boundary.")
    crlf = body[line_end - 1 : line_end] == b"\r"
    newline = b"\r\n" if crlf else b"\n"
    delimiter = newline + opening
    parts: list[Part] = []
    position = line_end + 1
    while True:
        head_end = body.find(newline + newline, position - len(newline))
        if head_end < 0:
            raise parse_error("Malformed multipart body: a part has no end of headers.")
        headers = _headers(body[position:head_end])
        content_start = head_end + 2 * len(newline)
        end = body.find(delimiter, content_start - len(newline))
        if end < 0:
            raise parse_error("Malformed multipart body: the closing boundary is missing.")
        parts.append(Part(headers, body[content_start:end] if end > content_start else b""))
        after = end + len(delimiter)
        if body[after : after + 2] == b"--":
            return parts
        next_line = body.find(b"\n", after)
        if next_line < 0:
            raise parse_error("Malformed multipart body: the closing boundary is missing.")
        position = next_line + 1
