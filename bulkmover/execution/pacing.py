"""Starts paced so that a lost answer can always be matched to its operation.

The API does not echo a start's request in the operation it creates, so what ties a start whose
answer was lost (a reset, a timeout, a kill) to its operation is time: the operation was created
between the claim and the answer (see ``ambiguity``). Two starts unanswered at once have
overlapping windows and cannot be told apart. So:

- the start's rate token is taken *before* the claim is committed (``enter``), not in the
  client's ``before_request`` after it, so the claim's time is when the POST leaves;
- at most ``lanes`` starts are between claim and recorded answer at once (default 1): a lane is
  taken before the claim and given back once the answer (the operation's name) is committed, or
  the start failed; during the client's backoff before a retry it is given back too (a retried
  start provably started nothing). With one lane a kill leaves at most one start unanswered,
  and every lost start's window holds no other start's. On the emulator one lane still starts
  480 operations a second;
- ``quiet()`` takes every lane, so while the operations are listed to resolve lost starts, every
  operation this run started has its name recorded: an unknown one is a lost start's.

Retries inside the client (a 429 refusal, say) take a token and a lane of their own. Which
attempt already holds them is kept in a context variable, which each start's task inherits from
the submitter at ``create_task`` time and changes only in its own copy.

    pacer = StartPacer(limits.acquire_request)
    client = HealthcareClient(before_request=pacer.before_request)
    client.listeners.append(pacer.on_response)
    await pacer.enter(); claim(shard); task = create_task(start(shard))  # inherits the lane
    ... in that task: try: await kind.start(...) finally: pacer.leave()
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum

from bulkmover.healthcare.stats import Family, RequestEvent

START = Family.LRO_START


class _Held(Enum):
    PREPAID = "prepaid"  # token and lane taken for this start's first attempt, not yet sent
    SENDING = "sending"  # an attempt is out: the lane is given back when it is answered


_held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("start_lane", default=None)


class StartPacer:
    """Rate tokens and start lanes for the client's ``before_request`` hook and listeners."""

    def __init__(self, acquire: Callable[[str], Awaitable[None]], lanes: int = 1) -> None:
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        self._acquire = acquire
        self._lanes = asyncio.Semaphore(lanes)
        self._count = lanes

    async def enter(self) -> None:
        """Take a start's token and lane now; the next start task created here inherits them."""
        await self._acquire(START)
        await self._lanes.acquire()
        _held.set(_Held.PREPAID)

    def handed_over(self) -> None:
        """The submitter created the start's task (which has its own copy): forget it here."""
        _held.set(None)

    async def before_request(self, family: str) -> None:
        if family != START:
            await self._acquire(family)
            return
        if _held.get() is _Held.PREPAID:
            _held.set(_Held.SENDING)
            return
        await self._acquire(family)
        await self._lanes.acquire()
        _held.set(_Held.SENDING)

    def on_response(self, event: RequestEvent) -> None:
        """Client listener: a start attempt the client will retry started nothing; its lane is
        free during the backoff. A final answer keeps the lane until ``leave``."""
        if event.family == START and event.retrying and _held.get() is _Held.SENDING:
            self.leave()

    @contextlib.asynccontextmanager
    async def quiet(self) -> AsyncIterator[None]:
        """Every lane: no start is under way (its name uncommitted) inside this block."""
        taken = 0
        try:
            for _ in range(self._count):
                await self._lanes.acquire()
                taken += 1
            yield
        finally:
            for _ in range(taken):
                self._lanes.release()

    def leave(self) -> None:
        """Give back the lane this task holds, if any (after the start, whatever happened)."""
        if _held.get() is not None:
            _held.set(None)
            self._lanes.release()
