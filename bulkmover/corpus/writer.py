"""Write a corpus to Cloud Storage or a local directory, streaming, with bounded concurrency.

Example::

    summary = await write_corpus(
        "gs://pacs-dump/2024", CorpusSpec(studies=100, series_per_study=3,
        instances_per_series=30, bad_files=10, seed=1), storage_endpoint="http://127.0.0.1:4443",
        manifest="corpus.jsonl",
    )

The generator feeds a bounded queue drained by ``concurrency`` uploaders, so memory holds at most
a few dozen files whatever the corpus size. A file enters the manifest once it has landed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

from bulkmover.corpus.destination import Destination, parse_destination
from bulkmover.corpus.generate import iter_corpus
from bulkmover.corpus.manifest import ManifestWriter
from bulkmover.corpus.progress import WriteCounters
from bulkmover.corpus.sinks import Sink, open_sink
from bulkmover.corpus.spec import CorpusFile, CorpusSpec, CorpusSummary
from bulkmover.errors import BulkmoverError, UsageError, first_user_error

DEFAULT_CONCURRENCY = 32


async def write_corpus(
    dest: str | Destination,
    spec: CorpusSpec,
    *,
    storage_endpoint: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    manifest: str | Path | None = None,
    counters: WriteCounters | None = None,
) -> CorpusSummary:
    """Generate ``spec`` into ``dest`` (``gs://BUCKET/PREFIX`` or a directory).

    ``storage_endpoint`` overrides ``STORAGE_EMULATOR_HOST``; ``counters`` lets a caller watch
    progress. Raises a BulkmoverError (UsageError, ApiError...) with a one-line message.
    """
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1 (got {concurrency})")
    destination = parse_destination(dest) if isinstance(dest, str) else dest
    spec = spec.resolved()
    assert spec.seed is not None
    counters = counters if counters is not None else WriteCounters()
    counters.files_total = spec.files
    started = time.monotonic()
    with ManifestWriter(manifest) as manifest_writer:
        async with open_sink(destination, storage_endpoint, concurrency) as sink:
            await sink.prepare()
            await _pump(
                iter_corpus(spec), sink, destination, manifest_writer, counters, concurrency
            )
    return CorpusSummary(
        destination=str(destination),
        seed=spec.seed,
        instances=counters.instances_done,
        bad_files=counters.bad_done,
        bytes=counters.bytes_done,
        seconds=time.monotonic() - started,
        manifest=str(manifest) if manifest is not None else None,
    )


async def _pump(
    files: Iterable[CorpusFile],
    sink: Sink,
    destination: Destination,
    manifest: ManifestWriter,
    counters: WriteCounters,
    concurrency: int,
) -> None:
    queue: asyncio.Queue[CorpusFile | None] = asyncio.Queue(maxsize=2 * concurrency)

    async def uploader() -> None:
        while (f := await queue.get()) is not None:
            name = destination.object_name(f.name)
            await sink.put(name, f.data)
            manifest.write(name, f)
            counters.landed(f)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(uploader())
            for f in files:
                await queue.put(f)
            for _ in range(concurrency):
                await queue.put(None)
    except BaseExceptionGroup as failures:
        error = first_user_error(failures)
        if not isinstance(error, BulkmoverError):
            raise  # a bug, not a user error: keep the whole group and its tracebacks
        raise error from None
