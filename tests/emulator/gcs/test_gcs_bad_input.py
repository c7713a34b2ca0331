"""Bad requests get GCS's JSON errors, and the server goes on serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gcs_testkit import GcsHttp, unique_bucket

from bulkmover.emulator.processes import RunningServer


@pytest.fixture(scope="module")
def client(gcs_emulator: RunningServer) -> Iterator[GcsHttp]:
    c = GcsHttp(gcs_emulator.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def bucket(client: GcsHttp) -> str:
    name = unique_bucket("bad-input")
    client.create_bucket(name)
    client.upload(name, "dir/x", b"x")
    return name


JSON = {"Content-Type": "application/json"}

CASES: list[tuple[str, str, str, dict[str, Any] | None, bytes | None, dict[str, str], int, str]] = [
    ("malformed json", "POST", "/storage/v1/b", None, b"{name: oops", JSON, 400, "parseError"),
    ("json not an object", "POST", "/storage/v1/b", None, b"[1, 2]", JSON, 400, "parseError"),
    ("empty body", "POST", "/storage/v1/b", None, b"", JSON, 400, "parseError"),
    (
        "bad bucket name",
        "POST",
        "/storage/v1/b",
        None,
        b'{"name": "UPPER case"}',
        JSON,
        400,
        "invalid",
    ),
    (
        "existing bucket",
        "POST",
        "/storage/v1/b",
        None,
        b'{"name": "{bucket}"}',
        JSON,
        409,
        "conflict",
    ),
    (
        "unknown bucket list",
        "GET",
        "/storage/v1/b/no-such-bucket-x1/o",
        None,
        None,
        {},
        404,
        "notFound",
    ),
    (
        "unknown bucket get",
        "GET",
        "/storage/v1/b/no-such-bucket-x1",
        None,
        None,
        {},
        404,
        "notFound",
    ),
    ("unknown object", "GET", "/storage/v1/b/{bucket}/o/nope", None, None, {}, 404, "notFound"),
    (
        "maxResults text",
        "GET",
        "/storage/v1/b/{bucket}/o",
        {"maxResults": "ten"},
        None,
        {},
        400,
        "invalidParameter",
    ),
    (
        "maxResults negative",
        "GET",
        "/storage/v1/b/{bucket}/o",
        {"maxResults": "-5"},
        None,
        {},
        400,
        "invalidParameter",
    ),
    (
        "page token garbage",
        "GET",
        "/storage/v1/b/{bucket}/o",
        {"pageToken": "!!!"},
        None,
        {},
        400,
        "invalid",
    ),
    (
        "page token not ours",
        "GET",
        "/storage/v1/b/{bucket}/o",
        {"pageToken": "eyJ4IjogMX0"},
        None,
        {},
        400,
        "invalid",
    ),
    ("bad glob", "GET", "/storage/v1/b/{bucket}/o", {"matchGlob": "a[b"}, None, {}, 400, "invalid"),
    (
        "bad fields",
        "GET",
        "/storage/v1/b/{bucket}/o",
        {"fields": "items(name"},
        None,
        {},
        400,
        "invalidParameter",
    ),
    (
        "bad boolean",
        "GET",
        "/storage/v1/b/{bucket}/o",
        {"includeTrailingDelimiter": "maybe"},
        None,
        {},
        400,
        "invalidParameter",
    ),
    (
        "bad generation",
        "GET",
        "/storage/v1/b/{bucket}/o/dir%2Fx",
        {"generation": "x"},
        None,
        {},
        400,
        "invalidParameter",
    ),
    (
        "no upload type",
        "POST",
        "/upload/storage/v1/b/{bucket}/o",
        {"name": "a"},
        b"x",
        {},
        400,
        "invalid",
    ),
    (
        "no object name",
        "POST",
        "/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "media"},
        b"x",
        {},
        400,
        "required",
    ),
    (
        "name with newline",
        "POST",
        "/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "media", "name": "a\nb"},
        b"x",
        {},
        400,
        "invalid",
    ),
    (
        "name too long",
        "POST",
        "/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "media", "name": "é" * 600},
        b"x",
        {},
        400,
        "invalid",
    ),
    (
        "upload to unknown bucket",
        "POST",
        "/upload/storage/v1/b/no-such-bucket-x1/o",
        {"uploadType": "media", "name": "a"},
        b"x",
        {},
        404,
        "notFound",
    ),
    (
        "garbage multipart",
        "POST",
        "/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "multipart"},
        b"junk",
        {"Content-Type": "multipart/related; boundary=zzz"},
        400,
        "parseError",
    ),
    (
        "multipart without boundary",
        "POST",
        "/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "multipart"},
        b"junk",
        {"Content-Type": "multipart/related"},
        400,
        "parseError",
    ),
    (
        "unknown upload session",
        "PUT",
        "/upload/storage/v1/b/{bucket}/o",
        {"uploadType": "resumable", "upload_id": "nope"},
        b"x",
        {},
        404,
        "notFound",
    ),
    (
        "unsatisfiable range",
        "GET",
        "/download/storage/v1/b/{bucket}/o/dir%2Fx",
        {"alt": "media"},
        None,
        {"Range": "bytes=5-9"},
        416,
        "requestedRangeNotSatisfiable",
    ),
    (
        "precondition",
        "DELETE",
        "/storage/v1/b/{bucket}/o/dir%2Fx",
        {"ifGenerationMatch": "1"},
        None,
        {},
        412,
        "conditionNotMet",
    ),
    (
        "non-empty bucket delete",
        "DELETE",
        "/storage/v1/b/{bucket}",
        None,
        None,
        {},
        409,
        "conflict",
    ),
    ("unknown route", "GET", "/storage/v1/nothing/here", None, None, {}, 404, "notFound"),
    ("wrong method", "PUT", "/storage/v1/b", None, b"{}", JSON, 405, "methodNotAllowed"),
    (
        "bulk bad json line",
        "POST",
        "/_emulator/b/{bucket}/bulk",
        None,
        b'{"name": "a", "size": 1}\n{oops\n',
        {},
        400,
        "invalid",
    ),
    (
        "bulk negative size",
        "POST",
        "/_emulator/b/{bucket}/bulk",
        None,
        b'{"name": "a", "size": -1}\n',
        {},
        400,
        "invalid",
    ),
    (
        "bulk bad base64",
        "POST",
        "/_emulator/b/{bucket}/bulk",
        None,
        b'{"name": "a", "content_b64": "%%%"}\n',
        {},
        400,
        "invalid",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "headers", "status", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_requests_get_gcs_errors(
    client: GcsHttp,
    bucket: str,
    method: str,
    path: str,
    params: dict[str, Any] | None,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    payload = body.replace(b"{bucket}", bucket.encode()) if body else body
    answer = client.request(method, path.format(bucket=bucket), params, payload, headers)
    assert answer.status == status, answer.body[:300]
    error = answer.json()["error"]
    assert error["code"] == status
    assert error["message"]
    (detail,) = error["errors"]
    assert detail["reason"] == reason
    assert detail["domain"] and detail["message"] == error["message"]
    alive = client.list_page(bucket)
    assert alive.status == 200 and [i["name"] for i in alive.json()["items"]] == ["dir/x"]


def test_bulk_errors_name_the_line(client: GcsHttp, bucket: str) -> None:
    body = b'{"name": "ok1", "size": 1}\n\n{"name": "ok2", "size": 2}\n{"size": 3}\n'
    answer = client.request("POST", f"/_emulator/b/{bucket}/bulk", body=body)
    assert answer.status == 400
    assert "line 4" in answer.json()["error"]["message"]


def test_a_client_that_hangs_up_mid_upload_leaves_nothing(
    client: GcsHttp, bucket: str, gcs_emulator: RunningServer
) -> None:
    import socket

    with socket.create_connection(
        (gcs_emulator.url.split("//")[1].split(":")[0], gcs_emulator.port)
    ) as raw:
        raw.sendall(
            f"POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=half HTTP/1.1\r\n"
            f"Host: x\r\nContent-Length: 100000\r\n\r\n".encode()
            + b"x" * 1000
        )
    assert client.get(bucket, "half").status == 404
    assert client.list_page(bucket).status == 200
