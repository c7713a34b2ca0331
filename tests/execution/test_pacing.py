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


async def enter_within(pacer: StartPacer, seconds: float = 1.0) -> None:
    """``enter`` in this task (``wait_for`` would run it in a task of its own, whose context
    keeps the lane)."""
    async with asyncio.timeout(seconds):
        await pacer.enter()


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


async def test_with_one_lane_a_second_start_waits_until_the_first_answer_is_recorded() -> None:
    pacer = StartPacer(Tokens(), lanes=1)
    answered_event = asyncio.Event()
    recorded = asyncio.Event()

    async def first() -> None:
        await attempt(pacer, 200)  # answered: the operation's name is in hand
        answered_event.set()
        await recorded.wait()  # committing the name
        pacer.leave()

    await pacer.enter()
    task = asyncio.create_task(first())
    pacer.handed_over()
    second = asyncio.create_task(pacer.enter())
    await answered_event.wait()
    await asyncio.sleep(0.01)
    assert not second.done(), "a second start went out before the first answer was recorded"
    recorded.set()
    await asyncio.wait_for(second, 1.0)
    await task


async def test_a_refused_start_frees_its_lane_during_the_clients_backoff() -> None:
    pacer = StartPacer(Tokens(), lanes=1)
    retry = asyncio.Event()

    async def refused_then_accepted() -> None:
        await pacer.before_request(Family.LRO_START)
        pacer.on_response(answered(429))  # the client will retry after Retry-After
        await retry.wait()
        await attempt(pacer, 200)
        pacer.leave()

    await pacer.enter()
    task = asyncio.create_task(refused_then_accepted())
    pacer.handed_over()
    await enter_within(pacer)  # another start goes out during the backoff
    blocked = asyncio.create_task(pacer.before_request(Family.LRO_START))
    pacer.leave()
    retry.set()
    await asyncio.wait_for(task, 1.0)
    await asyncio.wait_for(blocked, 1.0)


async def test_quiet_waits_for_every_start_under_way_and_holds_new_ones() -> None:
    pacer = StartPacer(Tokens(), lanes=2)
    await pacer.enter()
    pacer.handed_over()  # (the start itself would run in its own task)
    entered = asyncio.Event()
    listing = asyncio.Event()

    async def resolver() -> None:
        async with pacer.quiet():
            entered.set()
            await listing.wait()

    quiet = asyncio.create_task(resolver())
    await asyncio.sleep(0.01)
    assert not entered.is_set(), "listed while a start was under way"
    pacer._lanes.release()  # that start recorded its answer
    await asyncio.wait_for(entered.wait(), 1.0)
    newcomer = asyncio.create_task(pacer.enter())
    await asyncio.sleep(0.01)
    assert not newcomer.done(), "a start went out during the listing"
    listing.set()
    await quiet
    await asyncio.wait_for(newcomer, 1.0)


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
    await enter_within(pacer)  # the lane is free again
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
