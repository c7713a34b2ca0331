"""The wildcard rules of ``gcsSource.uri`` (import), written here independently of the engine.

Only the object part may hold wildcards:

- ``*`` matches zero or more characters other than ``/``;
- ``?`` matches exactly one character other than ``/``;
- ``**`` matches zero or more characters including ``/``; it must be the only wildcard, at the
  end of the path, optionally followed by a file extension (``gs://b/dir/**.dcm``).

>>> p = parse_import_uri("gs://bucket/DIR/Example?.dcm")
>>> p.prefix, p.matches("DIR/Example1.dcm"), p.matches("DIR/Example01.dcm")
('DIR/Example', True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bulkmover.emulator.healthcare.names import GcsUri, parse_gcs_uri
from bulkmover.emulator.healthcare.rpc import invalid

FIELD = "gcsSource.uri"


@dataclass(frozen=True)
class ImportPattern:
    """A parsed import URI: list objects under ``prefix``, keep those that ``matches``."""

    uri: GcsUri
    prefix: str
    regex: re.Pattern[str]
    literal: bool

    @property
    def bucket(self) -> str:
        return self.uri.bucket

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None


def parse_import_uri(uri: object) -> ImportPattern:
    """Parse ``gcsSource.uri`` or raise INVALID_ARGUMENT saying which rule it breaks."""
    gcs = parse_gcs_uri(uri, FIELD)
    obj = gcs.object
    if "**" in obj:
        return _recursive(gcs)
    parts: list[str] = []
    for ch in obj:
        if ch == "*":
            parts.append("[^/]*")
        elif ch == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(ch))
    first = min((i for i in (obj.find("*"), obj.find("?")) if i >= 0), default=len(obj))
    return ImportPattern(gcs, obj[:first], re.compile("".join(parts), re.DOTALL), first == len(obj))


def _recursive(gcs: GcsUri) -> ImportPattern:
    obj = gcs.object
    head, _, tail = obj.partition("**")
    if "*" in head or "?" in head or "*" in tail or "?" in tail:
        raise invalid(
            f"invalid {FIELD} {str(gcs)!r}: '**' cannot be combined with another wildcard "
            f"('*', '?' or a second '**')"
        )
    if "/" in tail or (tail and not (tail.startswith(".") and len(tail) > 1)):
        raise invalid(
            f"invalid {FIELD} {str(gcs)!r}: '**' must stand at the end of the path, optionally "
            f"followed by a file extension such as .dcm (e.g. gs://{gcs.bucket}/DIR/**.dcm)"
        )
    regex = re.compile(re.escape(head) + ".*" + re.escape(tail), re.DOTALL)
    return ImportPattern(gcs, head, regex, False)
