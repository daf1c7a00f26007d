"""Delivery slots: a stream's own limit, the shared budget, and the reserved slots."""

from __future__ import annotations

import asyncio

from dispatcher.slots import Slots


async def _acquired(slots: Slots) -> bool:
    """Whether a slot can be had right now (without waiting)."""
    try:
        await asyncio.wait_for(slots.acquire(), 0.05)
    except TimeoutError:
        return False
    return True


async def test_a_stream_never_exceeds_its_own_limit() -> None:
    slots = Slots(3, asyncio.Semaphore(100))
    for _ in range(3):
        assert await _acquired(slots)
    assert not await _acquired(slots)
    slots.release()
    assert await _acquired(slots)
    assert slots.in_flight == 3


async def test_slots_beyond_the_reserved_ones_draw_on_the_shared_budget() -> None:
    budget = asyncio.Semaphore(2)
    a, b = Slots(10, budget, reserved=1), Slots(10, budget, reserved=1)
    assert await _acquired(a)  # reserved: the budget is untouched
    assert budget._value == 2
    assert await _acquired(a)
    assert await _acquired(a)  # two borrowed: the budget is spent
    assert not await _acquired(a)
    assert await _acquired(b)  # b's reserved slot does not wait for a's borrowing
    assert not await _acquired(b)
    a.release()
    assert await _acquired(b)  # the permit a gave back


async def test_a_hung_neighbour_cannot_starve_the_reserved_slots() -> None:
    budget = asyncio.Semaphore(8)
    hung = Slots(64, budget, reserved=4)
    while await _acquired(hung):
        pass
    assert hung.in_flight == 12  # 4 reserved + the whole budget
    healthy = Slots(64, budget, reserved=4)
    for _ in range(4):
        assert await _acquired(healthy)


async def test_every_permit_returns_once_all_slots_are_released() -> None:
    budget = asyncio.Semaphore(5)
    slots = Slots(20, budget, reserved=3)
    held = 0
    while await _acquired(slots):
        held += 1
    assert held == 8
    # A waiter cancelled while it waits for the budget gives its own slot back.
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    for _ in range(held):
        slots.release()
    assert slots.in_flight == 0
    assert budget._value == 5
    for _ in range(8):
        assert await _acquired(slots)
