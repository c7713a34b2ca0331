"""No traceback ever reaches the user: hypothesis over config documents and command-line flags.

Config documents are built from the real config keys (so most of them get past the YAML and
reach validation, planning and the state file) with random and hostile values of random types,
or are raw hostile text. Commands are the ones that read a config (`plan`, `run`, `status`,
`report`, `verify`) and `demo`/`corpus` values that fail before any work, with random flags.
Every endpoint points at a closed loopback port and every retry budget is tiny, so a command
that gets as far as the network fails in milliseconds; no server is needed.

Each invocation runs in-process through ``bulkmover.cli.main`` (as the console script does) and
must end with SystemExit 0/1/2/130, no "Traceback" on stderr, and at most one "error:" line (one
exactly when it fails before producing output).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bulkmover.cli import main
from bulkmover.config import Config
from bulkmover.state import PlanDraft, StateStore


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CLOSED = f"http://127.0.0.1:{_closed_port()}"

BASE: dict[str, Any] = {
    "target": {
        "project": "demo-project",
        "location": "us-central1",
        "dataset": "demo",
        "dicom_store": "archive",
        "endpoint": CLOSED,
    },
    "storage": {"endpoint": CLOSED, "max_attempts": 1, "list_concurrency": 2},
    "import": {"source": "gs://pacs-dump/site-a/**.dcm"},
    "run": {"give_up_after_seconds": 0.5, "max_attempts": 1, "probe_throughput": False},
    "credentials": {"kind": "anonymous"},
    "state": "state/job.db",
}


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        keys[info.alias or name] = _keys(annotation) if nested else None  # type: ignore[arg-type]
    return keys


KEYS = _keys(Config)
# Never mutated: a missing endpoint means Google itself, `adc` means looking for credentials.
# Both stay on the closed port / anonymous; their values are fuzzed only among safe ones.
ENDPOINTS = st.sampled_from(
    [CLOSED, CLOSED + "/", CLOSED + "/x y", "http://127.0.0.1:99999", "http://[::1",
     "http://127.0.0.1:abc", "ftp://127.0.0.1", "", " ", "127.0.0.1:1", "http://\x00", 7, True]
)  # fmt: skip
KEY_FILES = st.sampled_from(
    ["missing.json", "DIR", "garbage.json", "empty.json", "partial.json", "/dev/null", None]
)
SAFE = {("target", "endpoint"), ("storage", "endpoint"), ("credentials", "kind")}

HOSTILE_STRINGS = [
    "", " ", "\t", "\n", "\x00", "gs://pacs-dump/site-a/**.dcm ", " gs://pacs-dump/**",
    "gs://pacs-dump/a/*.dcm", "gs://pacs-dump/a/**", "gs://", "gs://x", "gs://pacs-dump",
    "gs://pacs-dump/[a].dcm", "gs://pacs-dump/a/**/b", "gs://pacs-dump/\x00", "**", "*",
    "s3://b/k", "50GiB", "1.5TB", "0B", "-1GB", "999999999999999999999999TiB", "1e999",
    "/dev/null", "/proc/self/mem", "/", ".", "..", "~/x", "${HOME}", "a" * 300, "é" * 200,
    "\u202e", "NaN", "true", "null", "v1", "v1beta1", "STANDARD", "skip", "fail",
    "adc", "service_account", "anonymous",
]  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**80),
    st.sampled_from([0, 1, -1, 10**23, 2**63, 2**64, 10**9, 5000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=20),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
)


SNIPPETS = st.sampled_from(
    ["&a ", "*a", "!!python/object:os.system ", "\t", ":", "- ", "{", "'", "\x00", "%YAML 9\n",
     "---\n", "? ", "!!binary ", "!!timestamp ", "<<: "]
)  # fmt: skip


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A YAML document: the base job with random keys set, removed, added or retyped."""
    doc: dict[Any, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(sorted(KEYS)))
        action = draw(st.sampled_from(["set"] * 6 + ["drop", "unknown", "retype"]))
        keys = KEYS[section]
        if action == "retype" or keys is None:
            if section in ("target", "storage", "credentials") or (
                action == "drop" and section != "state"
            ):
                continue  # keep the endpoints and the credentials safe (see SAFE)
            doc[section] = draw(VALUES)
            continue
        if not isinstance(doc.get(section), dict):
            continue
        key = draw(st.sampled_from(sorted(keys)))
        if (section, key) in SAFE:
            if section != "credentials":
                doc[section][key] = draw(ENDPOINTS)
            else:  # a key file that cannot work (read locally, never sent anywhere)
                doc[section][key] = draw(st.sampled_from(["service_account", "anonymous"]))
                doc[section]["key_file"] = draw(KEY_FILES)
        elif action == "drop":
            doc[section].pop(key, None)
        elif action == "unknown":
            doc[section][draw(st.text(min_size=1, max_size=8))] = draw(SCALARS)
        else:
            doc[section][key] = draw(VALUES)
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    edit = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "raw"]))
    if edit == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(SNIPPETS | st.text(max_size=5)) + text[at:]
    elif edit == "raw":
        text = draw(st.text(max_size=200))
    return text


FLAG_VALUES = st.sampled_from(
    ["0", "1", "-1", "3", "99999999999999999999999", "x", "", "table", "csv", "json", "jsonl",
     "xml", "OUT", "DIR", "/dev/null", "/proc/self/x", "--json"]
)  # fmt: skip
COMMANDS: dict[str, list[str]] = {
    "plan": ["--json", "--replan"],
    "run": ["--json", "--retry-failed", "--error-code", "--create-store"],
    "status": ["--json"],
    "report": ["--failed", "--format", "--json", "--output"],
    "verify": ["--sample", "--all", "--seed", "--json"],
}
WITH_VALUE = {"--error-code", "--format", "--output", "--sample", "--seed"}


@st.composite
def flags(draw: st.DrawFn, command: str) -> list[str]:
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        known = st.sampled_from(COMMANDS[command])
        flag = draw(known | known | known | st.sampled_from(["--nope", "-x", "--json=1", "--"]))
        argv.append(flag)
        if flag in WITH_VALUE and draw(st.integers(0, 9)):
            argv.append(draw(FLAG_VALUES))
    return argv


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bulkmover-fuzz-") as name:
        old = os.getcwd()
        os.chdir(name)
        try:
            (Path(name) / "DIR").mkdir()
            (Path(name) / "garbage.json").write_bytes(b"\xff\xfe{")
            (Path(name) / "empty.json").write_text("{}")
            (Path(name) / "partial.json").write_text(
                '{"type": "service_account", "client_email": "a@b", "private_key": "x",'
                ' "token_uri": "' + CLOSED + '/token"}'
            )
            yield Path(name)
        finally:
            os.chdir(old)


def write_plan(path: Path) -> None:
    """A state file holding a plan of the base config's source, as `plan` would write it."""
    draft = PlanDraft(
        source=BASE["import"]["source"],
        max_objects_per_shard=5000,
        max_bytes_per_shard=50 * 2**30,
        listed_objects=4,
        matched_objects=3,
        matched_bytes=60,
        list_seconds=0.1,
    )
    with StateStore.open(path) as store, store.writing_plan(draft) as writer:
        for i, uri in enumerate(["gs://pacs-dump/site-a/x/**.dcm", "gs://pacs-dump/site-a/*.dcm"]):
            prefix = uri.split("/", 3)[3].split("*")[0]
            shard = writer.add_shard(uri, prefix, 1 + i, 20 * (1 + i))
            writer.add_objects(shard, [(f"{prefix}{j}.dcm", 20, 100 + j) for j in range(1 + i)])
        writer.seconds = 0.1


def invoke(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """Run the CLI as a user would and check what reaches them."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    shown = f"argv={argv!r}\nstderr={err[-2000:]!r}"
    assert code in (0, 1, 2, 130), shown
    assert "Traceback (most recent call last)" not in err, shown
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) <= 1, shown
    if code != 0 and not out:
        assert errors or "interrupted" in err, shown


COMMON = settings(
    deadline=None,
    max_examples=int(os.environ.get("BULKMOVER_FUZZ_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@COMMON
@given(
    document=documents(),
    command=st.sampled_from(sorted(COMMANDS)),
    data=st.data(),
    state=st.sampled_from(
        ["none", "planned", "planned", "empty", "garbage", "directory", "foreign"]
    ),
)
def test_config_commands_never_show_a_traceback(
    capsys: pytest.CaptureFixture[str], document: str, command: str, data: Any, state: str
) -> None:
    if state == "planned" and command in ("run", "verify"):
        # With a plan they go on to the Healthcare API, whose client retries an unreachable
        # endpoint for 10-30 s whatever the config says; planned state is for the readers.
        state = "none"
    with workdir() as where:
        config = where / "job.yaml"
        config.write_text(document, encoding="utf-8", errors="surrogateescape")
        if state != "none":
            (where / "state").mkdir()
            if state == "empty":
                (where / "state" / "job.db").write_bytes(b"")
            elif state == "garbage":
                (where / "state" / "job.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 500)
            elif state == "planned":
                write_plan(where / "state" / "job.db")
            elif state == "foreign":  # a real SQLite database, but not ours
                with contextlib.closing(sqlite3.connect(where / "state" / "job.db")) as db:
                    db.execute("CREATE TABLE plans (x)")
                    db.commit()
            else:
                (where / "state" / "job.db").mkdir()
        argv = [command, str(config), *data.draw(flags(command))]
        invoke(capsys, argv)


@COMMON
@given(
    argv=st.lists(
        st.sampled_from(
            [
                "plan",
                "run",
                "status",
                "report",
                "verify",
                "demo",
                "corpus",
                "emulator-x",
                "--studies",
                "--bad-files",
                "--data-dir",
                "--series-per-study",
                "--sites",
                "--instances-per-series",
                "--seed",
                "--concurrency",
                "--storage-endpoint",
                "--manifest",
                "--version",
                "-h",
                "missing.yaml",
                "DIR",
                "gs://",
                "gs://b",
                "s3://x/y",
                "0",
                "-1",
                "99999999999999999999999",
                "x",
                "",
            ]
        ),
        max_size=6,
    )
)
def test_random_command_lines_never_show_a_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    if "corpus" in argv or "demo" in argv:
        # Only values that fail before work: a valid corpus/demo would write or start servers.
        if not any(a in argv for a in ("0", "-1", "x", "", "99999999999999999999999")):
            return
        if "--storage-endpoint" not in argv:
            argv = [*argv, "--storage-endpoint", CLOSED]
    with workdir():
        invoke(capsys, argv)
