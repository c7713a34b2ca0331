"""Rate tokens taken before a shard is claimed, so its claim is stamped when its POST leaves.

The client waits for the family's rate limiter before every attempt (``before_request``). For a
start that would put the wait between the claim (committed with its time) and the POST: a start
whose answer is lost, or a run killed then, would have a window of seconds in which its
operation may have been created, and windows that overlap cannot be told apart (see
``ambiguity``). So the executor takes the start's token first (``prepay``), claims, and the
client's first attempt spends the prepaid token instead of waiting. Every attempt still costs
exactly one token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable


class StartPacer:
    """``HealthcareClient(before_request=pacer.before_request)``; ``await pacer.prepay(f)``."""

    def __init__(self, acquire: Callable[[str], Awaitable[None]]) -> None:
        self._acquire = acquire
        self._credits: Counter[str] = Counter()

    async def prepay(self, family: str) -> None:
        """Wait for one token of ``family`` now; the next attempt in that family spends it."""
        await self._acquire(family)
        self._credits[family] += 1

    async def before_request(self, family: str) -> None:
        if self._credits[family] > 0:
            self._credits[family] -= 1
            return
        await self._acquire(family)
