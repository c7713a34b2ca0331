"""Export filter files: one resource path per line selecting a study, a series or an instance.

>>> [str(p) for p in parse_filter_file(b"/studies/1.2\\r\\n/studies/1.2/series/3\\n", "gs://b/f")]
['/studies/1.2', '/studies/1.2/series/3']
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkmover.emulator.healthcare.names import is_uid
from bulkmover.emulator.healthcare.rpc import invalid

SHAPE = "/studies/{studyUID}[/series/{seriesUID}[/instances/{instanceUID}]]"


@dataclass(frozen=True)
class ResourcePath:
    """A study (series/instance None), a series (instance None) or one instance."""

    study: str
    series: str | None = None
    instance: str | None = None

    def __str__(self) -> str:
        text = f"/studies/{self.study}"
        if self.series is not None:
            text += f"/series/{self.series}"
        if self.instance is not None:
            text += f"/instances/{self.instance}"
        return text


def parse_resource_path(line: str) -> ResourcePath | None:
    """The path of one filter line, or None when the line is not of the documented shape."""
    parts = line.split("/")
    if len(parts) not in (3, 5, 7) or parts[0] != "":
        return None
    keys = parts[1::2]
    uids = parts[2::2]
    if keys != ["studies", "series", "instances"][: len(keys)]:
        return None
    if not all(is_uid(uid) for uid in uids):
        return None
    padded = uids + [None] * (3 - len(uids))
    return ResourcePath(padded[0] or "", padded[1], padded[2])


def parse_filter_file(data: bytes, uri: str) -> list[ResourcePath]:
    """Every path of the file, or INVALID_ARGUMENT naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"filter file {uri} is not UTF-8 text (byte {exc.start})") from None
    paths: list[ResourcePath] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r").strip()
        if not line:
            continue
        path = parse_resource_path(line)
        if path is None:
            raise invalid(
                f"filter file {uri} line {number}: {line[:200]!r} is not a resource path "
                f"{SHAPE} with UIDs of digits and dots (at most 64 characters)"
            )
        paths.append(path)
    if not paths:
        raise invalid(f"filter file {uri} lists no resource paths: one {SHAPE} per line")
    return paths
