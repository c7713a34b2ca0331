"""fields (partial responses): parsing and projection."""

from __future__ import annotations

import pytest

from bulkmover.emulator.gcs.errors import GcsApiError
from bulkmover.emulator.gcs.fields import apply_fields, parse_fields

PAGE = {
    "kind": "storage#objects",
    "nextPageToken": "t",
    "prefixes": ["a/"],
    "items": [
        {"name": "x", "size": "1", "md5Hash": "m", "metadata": {"k": "v", "j": "w"}},
        {"name": "y", "size": "2", "md5Hash": "n"},
    ],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "items(name,size),prefixes,nextPageToken",
            {
                "nextPageToken": "t",
                "prefixes": ["a/"],
                "items": [{"name": "x", "size": "1"}, {"name": "y", "size": "2"}],
            },
        ),
        ("items/name", {"items": [{"name": "x"}, {"name": "y"}]}),
        ("nextPageToken", {"nextPageToken": "t"}),
        ("items/metadata/k", {"items": [{"metadata": {"k": "v"}}, {}]}),
        (
            "items(name),items(size)",
            {"items": [{"name": "x", "size": "1"}, {"name": "y", "size": "2"}]},
        ),
        ("kind, prefixes", {"kind": "storage#objects", "prefixes": ["a/"]}),
        ("nothere", {}),
    ],
)
def test_selection(spec: str, expected: dict[str, object]) -> None:
    assert apply_fields(PAGE, parse_fields(spec)) == expected


def test_star_keeps_everything_below() -> None:
    assert apply_fields(PAGE, parse_fields("items/*")) == {"items": PAGE["items"]}


@pytest.mark.parametrize(
    "spec", ["items(name", "items)", ",", "items//name", "a,,b", "items(name)x"]
)
def test_malformed_selection_is_400(spec: str) -> None:
    with pytest.raises(GcsApiError) as caught:
        parse_fields(spec)
    assert caught.value.status == 400
