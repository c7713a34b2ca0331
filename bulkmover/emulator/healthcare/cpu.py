"""CPU work (DICOM parsing and rendering) off the event loop, so the server stays responsive.

A process pool gives imports both cores; with ``workers=0`` the work runs in threads instead
(lighter, for tests and small machines). A worker that dies is replaced and the call retried once.
Workers die with the server, even on ``kill -9`` (they would otherwise wait on their queue for
ever, 75 MB each, and keep multiprocessing's resource tracker alive with them).

Each call to a process pool costs about a millisecond of pickling and hand-offs, as much as
parsing a small DICOM file, so :class:`Batcher` groups the calls that arrive while the workers
are busy into one call per worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

from bulkmover.emulator.processes import die_with_parent

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


def _worker_init(parent: int) -> None:
    """Pool worker initializer: be killed when the server dies (PR_SET_PDEATHSIG on Linux), and
    watch the parent pid as well (other systems, and a parent that died before this ran)."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def _warm() -> None:
    import pydicom  # noqa: F401  (import cost paid at start, not on the first file)


class CpuPool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor = self._make()

    def _make(self) -> Executor:
        if self.workers <= 0:
            return ThreadPoolExecutor(max_workers=4, thread_name_prefix="dicom")
        # The resource tracker that spawn starts exits once every holder of its pipe (this
        # server and the workers) is gone, so workers dying with the server takes it along.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    @property
    def parallelism(self) -> int:
        return max(1, self.workers)

    def warm(self) -> None:
        """Start the workers now (in the background) rather than on the first file."""
        for _ in range(self.parallelism):
            self._executor.submit(_warm)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except BrokenProcessPool:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._make()
            return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class Batcher(Generic[A, R]):
    """``await batcher(arg)`` runs ``many([arg, ...])`` in the pool, batching waiting calls.

    At most ``pool.parallelism`` batches run at once; calls that arrive meanwhile wait and go
    together in the next batch (up to ``max_batch``), so a busy server pays the pool's per-call
    cost once per batch instead of once per file.
    """

    def __init__(
        self, pool: CpuPool, many: Callable[[list[A]], list[R]], max_batch: int = 32
    ) -> None:
        self.pool = pool
        self.many = many
        self.max_batch = max_batch
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, arg: A) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((arg, future))
        if self._running < self.pool.parallelism:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                try:
                    results = await self.pool.run(self.many, [arg for arg, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running -= 1
