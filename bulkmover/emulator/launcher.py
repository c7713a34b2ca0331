"""`bulkmover emulator`: the local cloud in the foreground.

Each emulator runs as its own child process (so the Cloud Storage server and the Healthcare API
server each get a core), started on loopback, with its state under one ``--data-dir``:
``DATA/gcs`` and ``DATA/healthcare``. The launcher prints the endpoints, waits for Ctrl-C or
SIGTERM, and stops both; if either child dies, it stops the other and exits non-zero.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.knobs import (
    add_knob_flags,
    build_knobs,
    knob_flags,
    load_profile,
)
from bulkmover.emulator.processes import RunningServer, python_module_argv, start_server
from bulkmover.emulator.serving import OneLineParser, port_number
from bulkmover.errors import EmulatorError

EXAMPLE = """example:
  bulkmover emulator --gcs-port 4443 --healthcare-port 8080 --data-dir ./cloud
  bulkmover emulator --profile configs/emulator-realistic.yaml --max-running-operations 5

A profile is YAML with a `gcs:` and a `healthcare:` section holding the knob names below
(underscores); flags given on the command line win over the profile."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bulkmover emulator",
        description="Run the local cloud (Cloud Storage + Healthcare API emulators) "
        "in the foreground until Ctrl-C/SIGTERM.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--gcs-port",
        type=port_number,
        default=4443,
        help="Cloud Storage port, 0 = any (default: 4443)",
    )
    parser.add_argument(
        "--healthcare-port",
        type=port_number,
        default=8080,
        help="Healthcare API (and Logging) port, 0 = any (default: 8080)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".bulkmover-cloud"),
        help="where both emulators keep their content across restarts (default: .bulkmover-cloud)",
    )
    parser.add_argument("--profile", type=Path, help="YAML file of realism knobs")
    add_knob_flags(parser, GcsRealism, "Cloud Storage realism knobs", prefix="gcs-")
    add_knob_flags(parser, HealthcareRealism, "Healthcare API realism knobs")
    return parser


class LocalCloud:
    """Both emulators as child processes; ``stop()`` is safe to call more than once."""

    def __init__(self, gcs: RunningServer, healthcare: RunningServer) -> None:
        self.gcs = gcs
        self.healthcare = healthcare

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        gcs_port: int = 0,
        healthcare_port: int = 0,
        gcs_knobs: GcsRealism | None = None,
        healthcare_knobs: HealthcareRealism | None = None,
    ) -> LocalCloud:
        if data_dir.exists() and not data_dir.is_dir():
            raise EmulatorError(
                f"--data-dir {data_dir} is a file, not a directory; choose a directory"
            )
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmulatorError(
                f"cannot create data dir {data_dir}: {exc.strerror or exc}; choose a writable"
                " --data-dir"
            ) from None
        gcs = start_server(
            python_module_argv(
                "bulkmover.emulator.gcs",
                "--host", host,
                "--port", str(gcs_port),
                "--data-dir", str(data_dir / "gcs"),
                *knob_flags(gcs_knobs or GcsRealism()),
            ),
            name="gcs",
        )  # fmt: skip
        try:
            healthcare = start_server(
                python_module_argv(
                    "bulkmover.emulator.healthcare",
                    "--host", host,
                    "--port", str(healthcare_port),
                    "--data-dir", str(data_dir / "healthcare"),
                    "--gcs-endpoint", gcs.url,
                    *knob_flags(healthcare_knobs or HealthcareRealism()),
                ),
                name="healthcare",
            )  # fmt: skip
        except BaseException:
            gcs.stop()
            raise
        return cls(gcs, healthcare)

    def stop(self) -> None:
        self.healthcare.stop()
        self.gcs.stop()

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    source = str(args.profile) if args.profile else "command line"
    gcs_knobs = build_knobs(
        GcsRealism, args, load_profile(args.profile, "gcs"), source, prefix="gcs-"
    )
    hc_knobs = build_knobs(
        HealthcareRealism, args, load_profile(args.profile, "healthcare"), source
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cloud = LocalCloud.start(
        args.data_dir,
        host=args.host,
        gcs_port=args.gcs_port,
        healthcare_port=args.healthcare_port,
        gcs_knobs=gcs_knobs,
        healthcare_knobs=hc_knobs,
    )
    try:
        print(f"Local cloud is up; content kept in {args.data_dir.resolve()}")
        print(f"  Cloud Storage   {cloud.gcs.url}   (STORAGE_EMULATOR_HOST={cloud.gcs.url})")
        print(f"  Healthcare API  {cloud.healthcare.url}   (Logging entries:list at the same root)")
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            for server in (cloud.gcs, cloud.healthcare):
                code = server.process.poll()
                if code is not None:
                    tail = " | ".join(list(server.output)[-3:]) or "no output"
                    raise EmulatorError(
                        f"the {server.name} emulator exited with code {code}: {tail}"
                    )
    finally:
        cloud.stop()
        print("Local cloud stopped.", file=sys.stderr)
