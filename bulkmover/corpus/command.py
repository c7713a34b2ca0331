"""The ``bulkmover corpus`` command's body: options in, progress while it runs, summary out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from bulkmover.corpus.destination import parse_destination
from bulkmover.corpus.progress import WriteCounters, live_progress
from bulkmover.corpus.spec import CorpusSpec, CorpusSummary
from bulkmover.corpus.writer import write_corpus
from bulkmover.errors import UsageError


def make_spec(**options: int | None) -> CorpusSpec:
    """A CorpusSpec from command-line values; a bad value becomes a one-line UsageError."""
    try:
        return CorpusSpec.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        message = first["msg"][0].lower() + first["msg"][1:]
        raise UsageError(f"{flag}: {message} (got {first['input']})") from None


def run_corpus(
    dest: str,
    spec: CorpusSpec,
    *,
    storage_endpoint: str | None,
    concurrency: int,
    manifest: Path | None,
    console: Console | None = None,
) -> CorpusSummary:
    """Write the corpus with a progress bar on the terminal; return the summary."""
    destination = parse_destination(dest)
    spec = spec.resolved()
    counters = WriteCounters(files_total=spec.files)
    with live_progress(counters, console):
        return asyncio.run(
            write_corpus(
                destination,
                spec,
                storage_endpoint=storage_endpoint,
                concurrency=concurrency,
                manifest=manifest,
                counters=counters,
            )
        )
