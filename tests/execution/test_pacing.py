"""Start tokens and lanes: taken before the claim, given back when the attempt is answered."""

from __future__ import annotations

import asyncio

from bulkmover.execution.pacing import StartPacer
from bulkmover.healthcare.stats import Family, RequestEvent


class Tokens:
    """Counts the rate tokens asked for, per family (never waits)."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def __call__(self, family: str) -> None:
        self.taken.append(family)


def answered(status: int | None = 200, family: Family = Family.LRO_START) -> RequestEvent:
    return RequestEvent(family, "dicomStores.import", status, 1, status == 429, 0.01)


async def attempt(pacer: StartPacer, status: int | None = 200) -> None:
    """What the client does for one attempt: the hook, the request, the listener."""
    await pacer.before_request(Family.LRO_START)
    await asyncio.sleep(0)
    pacer.on_response(answered(status))


async def test_the_first_attempt_spends_the_token_taken_before_the_claim() -> None:
    tokens = Tokens()
    pacer = StartPacer(tokens)
    await pacer.enter()
    task = asyncio.create_task(attempt(pacer))
    pacer.handed_over()
    await task
    assert tokens.taken == [Family.LRO_START]  # one token for the start, not two


async def test_a_retried_start_attempt_takes_a_token_of_its_own() -> None:
    tokens = Tokens()
    pacer = StartPacer(tokens)

    async def start() -> None:
        await attempt(pacer, 429)  # refused: nothing started, the client tries again
        await attempt(pacer, 200)
        pacer.leave()

    await pacer.enter()
    task = asyncio.create_task(start())
    pacer.handed_over()
    await task
    assert tokens.taken == [Family.LRO_START, Family.LRO_START]


async def test_with_one_lane_a_second_start_waits_until_the_first_is_answered_not_ended() -> None:
    pacer = StartPacer(Tokens(), lanes=1)
    answer = asyncio.Event()
    after_answer = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        await pacer.before_request(Family.LRO_START)
        await answer.wait()
        pacer.on_response(answered())
        order.append("first answered")
        await after_answer.wait()  # e.g. committing the name, polling...
        pacer.leave()

    await pacer.enter()
    task = asyncio.create_task(first())
    pacer.handed_over()
    second = asyncio.create_task(pacer.enter())
    await asyncio.sleep(0.01)
    assert not second.done(), "a second start went out while the first was unanswered"
    answer.set()
    await second
    order.append("second entered")
    after_answer.set()
    await task
    assert order == ["first answered", "second entered"]
    pacer.leave()


async def test_a_start_that_failed_before_any_answer_gives_its_lane_back() -> None:
    pacer = StartPacer(Tokens(), lanes=1)

    async def broken() -> None:
        try:
            await pacer.before_request(Family.LRO_START)
            raise RuntimeError("credentials could not be refreshed")
        finally:
            pacer.leave()

    await pacer.enter()
    task = asyncio.create_task(broken())
    pacer.handed_over()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(pacer.enter(), 1.0)  # the lane is free again
    pacer.leave()


async def test_other_families_take_tokens_and_no_lane() -> None:
    tokens = Tokens()
    pacer = StartPacer(tokens, lanes=1)
    await pacer.enter()  # a start holds the only lane
    await asyncio.wait_for(pacer.before_request(Family.OPERATIONS), 1.0)
    pacer.on_response(answered(family=Family.OPERATIONS))
    assert tokens.taken == [Family.LRO_START, Family.OPERATIONS]
    second = asyncio.create_task(pacer.enter())
    await asyncio.sleep(0.01)
    assert not second.done()  # the polling answer did not free the start's lane
    pacer.leave()
    await second
    pacer.leave()
