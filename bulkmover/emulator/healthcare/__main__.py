"""``python -m bulkmover.emulator.healthcare``: run the Healthcare API emulator (foreground)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from pathlib import Path

from bulkmover.emulator.healthcare.app import create_app
from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.healthcare.service import ServerConfig
from bulkmover.emulator.knobs import add_knob_flags, build_knobs, load_profile
from bulkmover.emulator.serving import (
    OneLineParser,
    die,
    port_number,
    prepare_data_dir,
    serve,
)
from bulkmover.errors import EmulatorError

EXAMPLE = """example:
  python -m bulkmover.emulator.healthcare --port 8080 --data-dir ./cloud/healthcare \\
      --gcs-endpoint http://127.0.0.1:4443 --max-running-operations 5 --operation-speed 200"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m bulkmover.emulator.healthcare",
        description="Cloud Healthcare API emulator (DICOM stores, import/export, DICOMweb, "
        "Logging entries:list) reading Cloud Storage through the GCS JSON API.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8080, help="port, 0 = any (default: 8080)"
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="where datasets, stores and operations live"
    )
    parser.add_argument(
        "--gcs-endpoint",
        default=os.environ.get("STORAGE_EMULATOR_HOST") or "http://127.0.0.1:4443",
        help="Cloud Storage JSON API endpoint (default: $STORAGE_EMULATOR_HOST, "
        "else http://127.0.0.1:4443)",
    )
    parser.add_argument("--profile", type=Path, help="YAML file of realism knobs")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes parsing and rendering DICOM; 0 = threads in this process "
        "(default: min(2, cores))",
    )
    add_knob_flags(parser, HealthcareRealism, "realism knobs")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    source = str(args.profile) if args.profile else "command line"
    try:
        knobs = build_knobs(
            HealthcareRealism, args, load_profile(args.profile, "healthcare"), source
        )
    except EmulatorError as exc:
        die(str(exc))
    prepare_data_dir(args.data_dir)
    config = ServerConfig(args.data_dir, args.gcs_endpoint, knobs, max(0, args.workers))
    try:
        asyncio.run(serve(create_app(config), name="healthcare", host=args.host, port=args.port))
    except sqlite3.DatabaseError as exc:
        die(f"the database in {args.data_dir} cannot be opened ({exc}); choose another --data-dir")
    except OSError as exc:
        die(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
