"""Bucket and object name rules, and the successor of a name for ordered range scans.

Cloud Storage orders names by their UTF-8 bytes; Python ``str`` comparison (code points) and
SQLite's BINARY collation over UTF-8 give the same order, so ranges computed here on ``str`` are
exactly the ranges the index scans.
"""

from __future__ import annotations

import re

from bulkmover.emulator.gcs.errors import invalid

MAX_OBJECT_NAME_BYTES = 1024
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_SURROGATES = (0xD800, 0xDFFF)
_MAX_CODE_POINT = 0x10FFFF


def object_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid object name, or None when it is."""
    if not name:
        return "object name is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME_BYTES:
        return f"object name is longer than {MAX_OBJECT_NAME_BYTES} bytes"
    if "\r" in name or "\n" in name:
        return "object name contains a carriage return or line feed"
    if name in (".", ".."):
        return "object name cannot be '.' or '..'"
    if "\x00" in name:
        return "object name contains a NUL character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "object name is not valid UTF-8"
    return None


def check_object_name(name: str) -> str:
    problem = object_name_problem(name)
    if problem is not None:
        raise invalid(f"Invalid object name {name[:100]!r}: {problem}.")
    return name


def check_bucket_name(name: str) -> str:
    ok = bool(_BUCKET_NAME.match(name)) and ".." not in name
    if not ok or not all(len(part) <= 63 for part in name.split(".")):
        raise invalid(
            f"Invalid bucket name {name[:100]!r}: use 3-63 lowercase letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit."
        )
    return name


def successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``.

    None when there is no such string (the prefix is empty or all U+10FFFF): the range is
    unbounded above.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < _MAX_CODE_POINT:
            nxt = last + 1
            if _SURROGATES[0] <= nxt <= _SURROGATES[1]:
                nxt = _SURROGATES[1] + 1
            return "".join(chars) + chr(nxt)
    return None
