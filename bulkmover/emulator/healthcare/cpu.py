"""CPU work (DICOM parsing and rendering) off the event loop, so the server stays responsive.

A process pool gives imports both cores; with ``workers=0`` the work runs in threads instead
(lighter, for tests and small machines). A worker that dies is replaced and the call retried once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


def _warm() -> None:
    import pydicom  # noqa: F401  (import cost paid at start, not on the first file)


class CpuPool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor = self._make()

    def _make(self) -> Executor:
        if self.workers <= 0:
            return ThreadPoolExecutor(max_workers=4, thread_name_prefix="dicom")
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    def warm(self) -> None:
        """Start the workers now (in the background) rather than on the first file."""
        for _ in range(max(1, self.workers)):
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
