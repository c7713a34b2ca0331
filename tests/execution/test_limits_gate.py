"""The resizable concurrency gate: limits that move while tasks wait, cancellation safety."""

from __future__ import annotations

import asyncio

import pytest

from bulkmover.execution.limits import ConcurrencyGate


async def test_gate_caps_holders_and_follows_limit_changes() -> None:
    gate = ConcurrencyGate(2)
    peak = 0
    release = asyncio.Event()

    async def hold() -> None:
        nonlocal peak
        async with gate:
            peak = max(peak, gate.in_use)
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(5)]
    await asyncio.sleep(0)
    assert (gate.in_use, gate.waiting) == (2, 3)
    gate.set_limit(4)  # raising wakes waiters at once
    await asyncio.sleep(0)
    assert (gate.in_use, gate.waiting) == (4, 1)
    gate.set_limit(1)  # lowering never interrupts holders
    assert gate.in_use == 4
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 4 and gate.in_use == 0
    # After the drain, only one at a time.
    assert gate.try_acquire() and not gate.try_acquire()
    gate.release()


async def test_gate_cancelled_waiter_leaks_no_slot() -> None:
    gate = ConcurrencyGate(1)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release()
    assert gate.in_use == 0 and gate.waiting == 0
    assert gate.try_acquire()


async def test_gate_granted_then_cancelled_hands_the_slot_on() -> None:
    gate = ConcurrencyGate(1)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    second = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # grants `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert gate.in_use == 1


def test_gate_occupy_counts_resumed_operations_above_the_limit() -> None:
    gate = ConcurrencyGate(2)
    for _ in range(3):
        gate.occupy()
    assert gate.in_use == 3 and not gate.try_acquire()
    with pytest.raises(RuntimeError):
        ConcurrencyGate(1).release()
