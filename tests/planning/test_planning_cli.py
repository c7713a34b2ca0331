"""``bulkmover plan`` as a user runs it: a subprocess, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cloudkit import fill_bucket

from bulkmover.emulator.processes import RunningServer

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s}}
storage: {{endpoint: "{url}", max_attempts: 2}}
import:
  source: "{source}"
  max_objects_per_shard: 3
credentials: {{kind: anonymous}}
state: state/plan.db
"""


def bulkmover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkmover.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def config_file(tmp_path: Path, url: str, source: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(CONFIG.format(url=url, source=source))
    return path


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def bucket(gcs_emulator: RunningServer) -> str:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    objects = {f"site/{d}/{i}.dcm": b"abc" for d in "abc" for i in range(2)}
    fill_bucket(gcs_emulator.url, name, {**objects, "site/readme.txt": b"?"})
    return name


def test_json_is_exactly_the_documented_shape(
    gcs_emulator: RunningServer, bucket: str, tmp_path: Path
) -> None:
    path = config_file(tmp_path, gcs_emulator.url, f"gs://{bucket}/site/**.dcm")
    result = bulkmover("plan", str(path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert document == {
        "source": f"gs://{bucket}/site/**.dcm",
        "shards": [
            {"id": 1, "uri": f"gs://{bucket}/site/a/**.dcm", "objects": 2, "bytes": 6},
            {"id": 2, "uri": f"gs://{bucket}/site/b/**.dcm", "objects": 2, "bytes": 6},
            {"id": 3, "uri": f"gs://{bucket}/site/c/**.dcm", "objects": 2, "bytes": 6},
        ],
        "totals": {"shards": 3, "objects": 6, "bytes": 18},
    }
    assert (tmp_path / "state" / "plan.db").exists()
    # Planning again over the state file refuses, unless --replan.
    line = one_error_line(bulkmover("plan", str(path)))
    assert "already holds a plan (3 shards, 6 objects" in line and "--replan" in line
    again = bulkmover("plan", str(path), "--replan", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["totals"] == document["totals"]


def test_summary(gcs_emulator: RunningServer, bucket: str, tmp_path: Path) -> None:
    path = config_file(tmp_path, gcs_emulator.url, f"gs://{bucket}/site/**.dcm")
    result = bulkmover("plan", str(path))
    assert result.returncode == 0, result.stderr
    for words in ("shards", "objects", "largest shard", "planning time", "shard sizes", "2-9"):
        assert words in result.stdout


def test_help_has_an_example() -> None:
    result = bulkmover("plan", "--help")
    assert result.returncode == 0
    assert "bulkmover plan configs/demo.yaml" in result.stdout
    assert "--replan" in result.stdout and "--json" in result.stdout


@pytest.fixture(scope="module")
def refusing_gcs() -> Iterator[str]:
    """A stub Cloud Storage that answers 403 to every request."""

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": {"code": 403, "message": "caller lacks access"}}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_bad_input_is_one_clear_line(
    gcs_emulator: RunningServer, bucket: str, refusing_gcs: str, tmp_path: Path
) -> None:
    cases = [
        (gcs_emulator.url, f"gs://{bucket}/site-*/**.dcm", "'**' cannot be combined"),
        (gcs_emulator.url, "gs://no-such-bucket-z/site/**.dcm", "not found"),
        (refusing_gcs, f"gs://{bucket}/site/**.dcm", "permission denied listing"),
        (gcs_emulator.url, f"gs://{bucket}/site/**.nii", "nothing matches"),
    ]
    for url, source, says in cases:
        line = one_error_line(bulkmover("plan", str(config_file(tmp_path, url, source))))
        assert says in line, line
    line = one_error_line(bulkmover("plan", str(tmp_path / "missing.yaml")))
    assert "cannot read config" in line
    (tmp_path / "broken.yaml").write_text("target: [\n")
    assert "not valid YAML" in one_error_line(bulkmover("plan", str(tmp_path / "broken.yaml")))
    assert not (tmp_path / "state" / "plan.db").exists()
