"""Realism knobs: 429 above the read rate, injected 503s, added page latency, profiles."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gcs_testkit import GcsHttp, StartGcs, unique_bucket

from bulkmover.errors import EmulatorError


def _error(answer_json: dict[str, object]) -> dict[str, object]:
    error = answer_json["error"]
    assert isinstance(error, dict)
    assert set(error) >= {"code", "message", "errors"}
    (detail,) = error["errors"]
    return {"code": error["code"], "reason": detail["reason"], "domain": detail["domain"]}


def test_reads_above_the_rate_limit_get_429_with_retry_after(start_gcs: StartGcs) -> None:
    server = start_gcs("--read-rate-limit", "3")
    client = GcsHttp(server.url)
    bucket = unique_bucket("rate")
    client.create_bucket(bucket)  # writes are not limited
    client.upload(bucket, "x", b"x")
    answers = [client.get(bucket, "x") for _ in range(20)]
    limited = [a for a in answers if a.status == 429]
    assert limited, "20 immediate reads at 3/s must hit the limit"
    assert any(a.status == 200 for a in answers)
    assert all(a.status in (200, 429) for a in answers)
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert _error(limited[0].json()) == {
        "code": 429,
        "reason": "rateLimitExceeded",
        "domain": "usageLimits",
    }
    time.sleep(1.1)
    assert client.get(bucket, "x").status == 200  # the bucket refills
    client.close()


def test_fault_rate_one_answers_503_everywhere_but_the_bulk_path(start_gcs: StartGcs) -> None:
    server = start_gcs("--fault-rate", "1.0", "--seed", "7")
    client = GcsHttp(server.url)
    for method, path in [
        ("GET", "/storage/v1/b"),
        ("POST", "/storage/v1/b"),
        ("GET", "/storage/v1/b/some-bucket/o"),
        ("GET", "/download/storage/v1/b/some-bucket/o/x"),
    ]:
        answer = client.request(method, path, body=b'{"name": "never-made"}')
        assert answer.status == 503
        assert _error(answer.json()) == {"code": 503, "reason": "backendError", "domain": "global"}
    assert client.request("GET", "/_emulator/health").status == 200
    client.close()


def test_faults_are_a_fraction_and_reproducible_with_a_seed(
    start_gcs: StartGcs, tmp_path: Path
) -> None:
    runs = []
    for i in range(2):
        server = start_gcs("--fault-rate", "0.5", "--seed", "42", data_dir=tmp_path / f"d{i}")
        client = GcsHttp(server.url)
        runs.append([client.request("GET", "/storage/v1/b").status for _ in range(40)])
        client.close()
        server.stop()
    assert runs[0] == runs[1]
    assert 5 < runs[0].count(503) < 35 and set(runs[0]) == {200, 503}


def test_page_latency_is_added_to_list_pages_only(start_gcs: StartGcs, tmp_path: Path) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text("gcs:\n  page_latency: 0.4\nhealthcare:\n  fault_rate: 1.0\n")
    server = start_gcs("--profile", str(profile))
    client = GcsHttp(server.url)
    bucket = unique_bucket("latency")
    client.create_bucket(bucket)
    for i in range(3):
        client.upload(bucket, f"o{i}", b"x")
    started = time.monotonic()
    listing = client.list_all(bucket, maxResults=1)
    elapsed = time.monotonic() - started
    assert len(listing.pages) == 3
    assert elapsed >= 3 * 0.4
    client.close()


def test_request_latency_flag_overrides_the_profile(start_gcs: StartGcs, tmp_path: Path) -> None:
    profile = tmp_path / "flat.yaml"
    profile.write_text("request_latency: 5\n")
    server = start_gcs("--profile", str(profile), "--request-latency", "0.3")
    client = GcsHttp(server.url)
    started = time.monotonic()
    assert client.request("GET", "/storage/v1/b").status == 200
    assert 0.3 <= time.monotonic() - started < 4.0  # the flag's 0.3 s, not the profile's 5 s
    client.close()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--fault-rate", "1.5"), "--fault-rate"),
        (("--page-latency", "-1"), "--page-latency"),
    ],
)
def test_bad_knobs_stop_the_server_with_one_line(
    start_gcs: StartGcs, flags: tuple[str, ...], message: str
) -> None:
    with pytest.raises(EmulatorError) as caught:
        start_gcs(*flags)
    assert message in str(caught.value) and "error:" in str(caught.value)
