"""Links the emulator writes (selfLink, mediaLink, a resumable session's Location) lead back to
it even when the client's Host header has no port (dicomweb-client and some proxies send one)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from gcs_testkit import unique_bucket

from bulkmover.emulator.processes import RunningServer


def test_links_keep_the_port_of_a_portless_host(gcs_emulator: RunningServer) -> None:
    parts = urlsplit(gcs_emulator.url)
    assert parts.hostname and parts.port
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Host": parts.hostname, "Content-Type": "application/json"}
    bucket = unique_bucket("links")
    conn.request("POST", "/storage/v1/b", json.dumps({"name": bucket}), headers)
    answer = conn.getresponse()
    assert answer.status == 200
    assert urlsplit(json.loads(answer.read())["selfLink"]).port == parts.port
    conn.request(
        "POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=x", b"{}", headers
    )
    started = conn.getresponse()
    started.read()
    assert started.status == 200
    location = urlsplit(started.headers["Location"])
    assert (location.hostname, location.port) == (parts.hostname, parts.port)
    conn.close()
