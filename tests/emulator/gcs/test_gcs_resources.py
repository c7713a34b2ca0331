"""Object resources: the fast JSON text of list pages says exactly what the dict path says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmover.emulator.gcs.resources import object_json, object_resource, quote_name, rfc3339
from bulkmover.emulator.gcs.rows import ObjectRow

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    min_size=1,
    max_size=40,
)


def _row(name: str, content_type: str | None, extra: str | None, updated_offset: int) -> ObjectRow:
    created = 1_790_000_000_123_456
    return ObjectRow(
        name=name,
        generation=1_790_000_000_123_456,
        metageneration=3,
        content_type=content_type,
        created_us=created,
        updated_us=created + updated_offset,
        extra=extra,
        sha256="0" * 64,
        size=1234,
        md5="XrY7u+Ae7tCTyyK7j1rNww==",
        crc32c="yZRlqg==",
    )


@settings(max_examples=300, deadline=None)
@given(
    name=names,
    content_type=st.sampled_from([None, "application/dicom", 'text/plain; charset="x"']),
    extra=st.sampled_from(
        [None, json.dumps({"metadata": {"k": 'v\\"'}, "storageClass": "COLDLINE"})]
    ),
    updated_offset=st.sampled_from([0, 5_000_000]),
    base=st.sampled_from(["http://127.0.0.1:4443", 'http://odd"host\\:1']),
)
def test_fast_json_equals_the_resource(
    name: str, content_type: str | None, extra: str | None, updated_offset: int, base: str
) -> None:
    row = _row(name, content_type, extra, updated_offset)
    assert json.loads(object_json(row, "bucket-1", base)) == object_resource(row, "bucket-1", base)
    object_json(row, "bucket-1", base).encode("ascii")


@settings(max_examples=300, deadline=None)
@given(names)
def test_quote_name_is_urllib_quote(name: str) -> None:
    assert quote_name(name) == quote(name, safe="")


def test_timestamps_are_rfc3339_with_milliseconds() -> None:
    us = 1_790_000_000_123_456
    expected = datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat(timespec="milliseconds")
    assert rfc3339(us) == expected.replace("+00:00", "Z")
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
