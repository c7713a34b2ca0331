"""A bad ``credentials.key_file`` is one line naming the file and the config key, before any
session is opened (no "Unclosed client session"), on every command's first credentials path:
``plan`` lists the bucket first (Cloud Storage), ``run`` over a plan and ``verify`` load the
Healthcare API's credentials first. No line quotes the key file: it holds secrets.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from cloudkit import fill_bucket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkmover.emulator.processes import RunningServer

CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s, endpoint: "{hc}"}}
storage: {{endpoint: "{gcs}", max_attempts: 2}}
import: {{source: "gs://{bucket}/site/**.dcm"}}
run: {{give_up_after_seconds: 20}}
credentials: {{kind: KIND, key_file: keys/sa.json}}
state: state/job.db
"""
PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)
CLIENT_SECRET = "GOCSPX-d0n0tPr1ntTh1s"
REFRESH_TOKEN = "1//0gSecretRefreshTokenDoNotPrint"
SECRETS = [PEM.splitlines()[1][:24], "PRIVATE KEY", CLIENT_SECRET, REFRESH_TOKEN, "MIIsecret"]


def service_account(**changes: str | None) -> bytes:
    key = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": PEM,
        "client_email": "mover@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:1/token",
    }
    for name, value in changes.items():
        if value is None:
            del key[name]
        else:
            key[name] = value
    return json.dumps(key).encode()


# What people point key_file at, and what the one line must then say.
KEYS: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "not found"),
    "a directory": (b"", "cannot read service-account key file"),
    "a PEM file, not JSON": (
        b"-----BEGIN PRIVATE KEY-----\nMIIsecret" + PEM.splitlines()[1].encode() + b"\n",
        "not JSON",
    ),
    "a gcloud user login": (
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "1.apps.googleusercontent.com",
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
            }
        ).encode(),
        "use credentials kind adc",
    ),
    "no client_email": (service_account(client_email=None), "no client_email"),
    "a broken private key": (
        service_account(
            private_key="-----BEGIN PRIVATE KEY-----\nMIIsecretnotakey\n-----END PRIVATE KEY-----\n"
        ),
        "not a PEM private key",
    ),
}
COMMANDS = (("plan", "--replan"), ("run",), ("verify",))


def bulkmover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "default", "-m", "bulkmover.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def planned(
    gcs_emulator: RunningServer,
    healthcare_emulator: RunningServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, bytes]:
    """A config template (``KIND`` left open) and the state file an anonymous plan wrote."""
    bucket = f"keys-{uuid.uuid4().hex[:10]}"
    fill_bucket(gcs_emulator.url, bucket, {f"site/{i}.dcm": b"x" for i in range(3)})
    template = CONFIG.format(hc=healthcare_emulator.url, gcs=gcs_emulator.url, bucket=bucket)
    work = tmp_path_factory.mktemp("keys")
    anonymous = template.replace("{kind: KIND, key_file: keys/sa.json}", "{kind: anonymous}")
    (work / "job.yaml").write_text(anonymous)
    result = bulkmover("plan", str(work / "job.yaml"))
    assert result.returncode == 0, result.stderr
    return template, (work / "state" / "job.db").read_bytes()


def job(tmp_path: Path, planned: tuple[str, bytes], key: bytes | None) -> tuple[Path, Path]:
    """The planned job in ``tmp_path`` with a service-account ``key`` (None: no file; empty:
    a directory in its place): (config, key file)."""
    template, state = planned
    config = tmp_path / "job.yaml"
    config.write_text(template.replace("KIND", "service_account"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "job.db").write_bytes(state)
    key_file = tmp_path / "keys" / "sa.json"
    key_file.parent.mkdir()
    if key == b"":
        key_file.mkdir()
    elif key is not None:
        key_file.write_bytes(key)
    return config, key_file


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", KEYS)
def test_a_bad_key_file_is_one_line_naming_it_and_quoting_no_secret(
    planned: tuple[str, bytes], tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    key, says = KEYS[case]
    config, key_file = job(tmp_path, planned, key)
    result = bulkmover(command[0], str(config), *command[1:])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr  # a ConfigError
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no "Unclosed client session" after it
    line = lines[0]
    assert line.startswith("error: ") and str(key_file) in line and says in line
    assert "credentials.key_file" in line
    assert [s for s in SECRETS if s in result.stderr + result.stdout] == []


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    """A token endpoint answering any grant with one access token."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "tok-1", "expires_in": 3600, "token_type": "Bearer"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_a_good_key_file_still_plans_against_the_emulator(
    planned: tuple[str, bytes], tmp_path: Path
) -> None:
    """An emulator endpoint does not make the requests anonymous: the key's token is fetched
    (from its token_uri) and sent."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        token_uri = f"http://127.0.0.1:{server.server_address[1]}/token"
        config, _ = job(tmp_path, planned, service_account(token_uri=token_uri))
        result = bulkmover("plan", str(config), "--replan", "--json")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["objects"] == 3
