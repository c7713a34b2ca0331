"""``python -m bulkmover.emulator.gcs --port P --data-dir DIR [--profile FILE] [knobs]``."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

from bulkmover.emulator.gcs.app import build_app
from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.gcs.store import Store
from bulkmover.emulator.knobs import add_knob_flags, build_knobs, load_profile
from bulkmover.emulator.serving import (
    OneLineParser,
    die,
    port_number,
    prepare_data_dir,
    serve,
)
from bulkmover.errors import EmulatorError


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m bulkmover.emulator.gcs",
        description="Cloud Storage emulator (JSON API subset) over an ordered SQLite index.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=port_number, default=0, help="port to listen on (0: a free one)"
    )
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="where the index and object bytes are kept"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="YAML file of realism knobs (a 'gcs:' section)"
    )
    parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    add_knob_flags(parser, GcsRealism, "realism knobs")
    return parser


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data dir for the life of the process."""
    try:
        handle = open(data_dir / "emulator.lock", "a+")  # noqa: SIM115 - held until exit
    except OSError as exc:
        die(f"cannot write data dir {data_dir}: {exc.strerror}; choose a writable --data-dir")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        die(
            f"data dir {data_dir} is in use by another Cloud Storage emulator; stop it or choose "
            "another --data-dir"
        )
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        profile = load_profile(args.profile, section="gcs")
        source = f"profile {args.profile} or flags" if args.profile else "flags"
        realism = build_knobs(GcsRealism, args, profile, source)
    except EmulatorError as err:
        die(str(err))
    data_dir: Path = args.data_dir
    prepare_data_dir(data_dir)
    lock = lock_data_dir(data_dir)
    try:
        store = Store(data_dir)
    except sqlite3.DatabaseError as exc:
        die(f"the index in {data_dir} cannot be opened ({exc}); choose another --data-dir")
    try:
        asyncio.run(
            serve(build_app(store, realism, args.seed), name="gcs", host=args.host, port=args.port)
        )
    except OSError as exc:
        die(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; choose another --port")
    finally:
        lock.close()


if __name__ == "__main__":
    main()
