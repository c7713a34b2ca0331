"""The operations-in-flight cap: a semaphore whose limit the adaptive limits move at run time.

``asyncio.Semaphore`` has no settable limit; this cap must move both ways while tasks wait,
without ever interrupting an operation already started.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class ConcurrencyGate:
    """A semaphore whose limit can change while tasks wait (operations in flight).

    Lowering the limit never interrupts holders: new acquisitions wait until enough slots are
    released. ``occupy()`` takes a slot regardless of the limit, for operations found still
    running on resume (they count against the cap whether we like it or not).

        async with gate:
            ...  # one operation in flight
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def set_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._wake()

    def occupy(self) -> None:
        """Take a slot now, even above the limit."""
        self._in_use += 1

    def try_acquire(self) -> bool:
        if self._in_use < self._limit and not self.waiting:
            self._in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted and cancelled in the same tick: hand the slot on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        if self._in_use <= 0:
            raise RuntimeError("ConcurrencyGate released more often than acquired")
        self._in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_use < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)

    async def __aenter__(self) -> ConcurrencyGate:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
