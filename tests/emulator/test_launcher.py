"""`bulkmover emulator`: both servers up behind one command, stopped cleanly, bad knobs refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BULKMOVER = [sys.executable, "-m", "bulkmover.cli"]


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [*BULKMOVER, "emulator", "--gcs-port", "0", "--healthcare-port", "0",
         "--data-dir", str(tmp_path / "cloud"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(urls) < 2:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"\s+(Cloud Storage|Healthcare API)\s+(http://\S+)", line)
        if m:
            urls[m.group(1)] = m.group(2)
    return proc, urls


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_emulator_serves_both_apis_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc, urls = _start(tmp_path, "--gcs-page-latency", "0.01", "--max-running-operations", "3")
    try:
        assert set(urls) == {"Cloud Storage", "Healthcare API"}, urls
        buckets = _get_json(urls["Cloud Storage"] + "/storage/v1/b?project=demo")
        assert buckets["kind"] == "storage#buckets"
        req = urllib.request.Request(
            urls["Healthcare API"] + "/v1/projects/p/locations/l/datasets?datasetId=d",
            data=b"{}", method="POST", headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        dataset = _get_json(urls["Healthcare API"] + "/v1/projects/p/locations/l/datasets/d")
        assert dataset["name"] == "projects/p/locations/l/datasets/d"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert (tmp_path / "cloud" / "gcs").is_dir()
    assert (tmp_path / "cloud" / "healthcare").is_dir()


def test_bad_knob_is_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*BULKMOVER, "emulator", "--data-dir", str(tmp_path), "--gcs-fault-rate", "lots"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--gcs-fault-rate" in result.stderr


def test_profile_with_unknown_knob_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text("gcs:\n  page_latency: 0.1\nhealthcare:\n  operation_sped: 3\n")
    result = subprocess.run(
        [*BULKMOVER, "emulator", "--data-dir", str(tmp_path), "--profile", str(profile)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "operation_sped" in result.stderr
