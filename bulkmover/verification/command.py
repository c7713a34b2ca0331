"""The ``verify`` command's body: options in, check, a report (or JSON) out, an exit code.

Progress goes to stderr, and only to a terminal, so ``--json`` output and logs stay clean.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bulkmover.config import load_config
from bulkmover.errors import UsageError
from bulkmover.verification.check import VerifyReport, verify

LISTED = 50
"""Missing and unreadable files printed per kind (``--json`` lists every one)."""


def verify_command(
    config_path: Path,
    *,
    sample: int | None,
    all_files: bool,
    seed: int | None,
    as_json: bool,
) -> int:
    """0 when every checked file's instance is in the store, 1 on any difference."""
    if sample is not None and all_files:
        raise UsageError("--sample and --all exclude each other; give one of them")
    if seed is not None and sample is None:
        raise UsageError("--seed chooses the files of --sample; add --sample N")
    if sample is not None and sample < 1:
        raise UsageError(f"--sample must be at least 1 (got {sample})")
    config = load_config(config_path)
    err = Console(stderr=True)
    with _LiveProgress(err) as progress:
        report = asyncio.run(
            verify(config, sample=sample, all_files=all_files, seed=seed, progress=progress)
        )
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        print_report(report, Console(highlight=False))
    return 0 if report.ok else 1


def print_report(report: VerifyReport, console: Console) -> None:
    console.print(
        f"DICOM store {report.store}: {report.instances:,} instances;"
        f" {report.imported_files:,} files recorded as imported",
        soft_wrap=True,
    )
    console.print(f"  {report.note}", soft_wrap=True)
    if report.mode == "count":
        console.print(
            "files not checked one by one: add --sample N or --all to look each file's"
            " instance up in the store",
            soft_wrap=True,
        )
        return
    present = report.checked - len(report.missing) - len(report.unreadable)
    scope = "all" if report.mode == "all" else "a random sample"
    console.print(
        f"checked {report.checked:,} files ({scope}): {present:,} in the store,"
        f" {len(report.missing):,} missing, {len(report.unreadable):,} unreadable",
        soft_wrap=True,
    )
    if report.missing:
        console.print("missing from the store (recorded as imported):")
        for m in report.missing[:LISTED]:
            console.print(f"  {escape(m.uri)}  SOP Instance UID {m.sop_uid}", soft_wrap=True)
        _more(console, len(report.missing))
    if report.unreadable:
        console.print("header not readable (cannot be checked):")
        for u in report.unreadable[:LISTED]:
            console.print(f"  {escape(u.uri)}: {escape(u.reason)}", soft_wrap=True)
        _more(console, len(report.unreadable))
    if report.ok:
        console.print("[green]verify: every checked file's instance is in the store[/]")
    else:
        console.print("[red]verify: differences found[/]")


def _more(console: Console, total: int) -> None:
    if total > LISTED:
        console.print(f"  ... and {total - LISTED:,} more (--json lists every one)")


class _LiveProgress:
    """rich progress bars on a terminal's stderr; silent elsewhere."""

    def __init__(self, console: Console) -> None:
        self.live = console.is_terminal
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self.live,
        )
        self._read = self.bars.add_task("reading headers", total=None, visible=False)
        self._looked = self.bars.add_task("looking up in the store", total=None, visible=False)

    def __enter__(self) -> _LiveProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def started(self, files: int) -> None:
        for task in (self._read, self._looked):
            self.bars.update(task, total=files, visible=True)

    def read(self, files: int) -> None:
        self.bars.advance(self._read, files)

    def looked_up(self, files: int) -> None:
        self.bars.advance(self._looked, files)
