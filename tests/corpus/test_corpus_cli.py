"""``bulkmover corpus`` as a user runs it: a subprocess, exit codes, one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bulkmover.emulator.processes import RunningServer

BULKMOVER = str(Path(sys.executable).with_name("bulkmover"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    return subprocess.run(
        [BULKMOVER, "corpus", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_shows_an_example() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "Example" in result.stdout and "bulkmover corpus gs://" in result.stdout
    assert "--bad-files" in result.stdout and "--manifest" in result.stdout


def test_local_directory_run_prints_a_summary(tmp_path: Path) -> None:
    dest = tmp_path / "dump"
    manifest = tmp_path / "m.jsonl"
    result = run(
        str(dest),
        "--studies", "2", "--series-per-study", "2", "--instances-per-series", "3",
        "--bad-files", "4", "--seed", "8", "--sites", "2", "--manifest", str(manifest),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith("corpus: 12 instances, 4 bad files, ")
    assert "(seed 8)" in summary[0]
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(records) == 16 == sum(1 for p in dest.rglob("*.dcm"))
    assert sum(not r["valid"] for r in records) == 4


def test_same_seed_twice_writes_identical_trees(tmp_path: Path) -> None:
    trees = []
    for name in ("one", "two"):
        args = ["--studies", "2", "--instances-per-series", "2", "--bad-files", "2", "--seed", "4"]
        assert run(str(tmp_path / name), *args).returncode == 0
        root = tmp_path / name
        trees.append({str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.dcm")})
    assert trees[0] == trees[1] and len(trees[0]) == 6


def test_run_into_the_gcs_emulator_via_environment(gcs_emulator: RunningServer) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    result = run(
        f"gs://{bucket}/p", "--studies", "1", "--instances-per-series", "4", "--seed", "1",
        env={"STORAGE_EMULATOR_HOST": gcs_emulator.url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"-> gs://{bucket}/p (seed 1)" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["gs://NOT_A_BUCKET/x", "--studies", "1"], 2, "invalid bucket name"),
        (["s3://bucket/x", "--studies", "1"], 2, "unsupported destination"),
        (["/tmp/x", "--studies", "0"], 2, "--studies: input should be greater than or equal to 1"),
        (["/tmp/x", "--studies", "1", "--concurrency", "0"], 2, "--concurrency must be"),
        (["gs://b-ok/x", "--studies", "1", "--storage-endpoint", "http://127.0.0.1:9"], 1,
         "cannot reach Cloud Storage at http://127.0.0.1:9"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_an_exit_code(args: list[str], code: int, fragment: str) -> None:
    result = run(*args)
    assert result.returncode == code
    assert fragment in one_line_error(result)


def test_destination_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = run(str(target), "--studies", "1")
    assert result.returncode == 2
    assert "is a file" in one_line_error(result)


@pytest.fixture
def forbidding_server() -> Iterator[str]:
    """A real HTTP server answering every Cloud Storage call with GCS's 403 body: the emulators
    grant everything, so this stands in for a bucket the caller has no rights on."""

    async def forbid(request: web.Request) -> web.Response:
        body = {
            "error": {
                "code": 403,
                "message": "caller does not have storage.buckets.get access to the bucket.",
                "errors": [{"reason": "forbidden", "domain": "global"}],
            }
        }
        return web.json_response(body, status=403)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forbid)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_forbidden_bucket_is_one_line_with_a_fix(forbidding_server: str) -> None:
    result = run("gs://not-mine/x", "--studies", "1", "--storage-endpoint", forbidding_server)
    assert result.returncode == 1
    line = one_line_error(result)
    assert "permission denied (403)" in line and "gs://not-mine" in line
    assert "storage.buckets.get access" in line and "grant" in line
