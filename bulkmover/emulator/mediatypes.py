"""Media types as both emulators read them from Content-Type and Accept headers."""

from __future__ import annotations


def split_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``'a/b; k="v"'`` -> ``('a/b', {'k': 'v'})`` (type and keys lower-cased)."""
    head, *params = value.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        key, sep, val = param.partition("=")
        if sep:
            parsed[key.strip().lower()] = val.strip().strip('"')
    return head.strip().lower(), parsed
