"""Delivery slots: a stream's own limit, the shared budget, and the reserved slots."""

from __future__ import annotations

import asyncio

from dispatcher.slots import Permits, Slots


async def _acquired(slots: Slots) -> bool:
    """Whether a slot can be had right now (without waiting)."""
    try:
        await asyncio.wait_for(slots.acquire(), 0.05)
    except TimeoutError:
        return False
    return True


async def test_a_stream_never_exceeds_its_own_limit() -> None:
    slots = Slots(3, Permits(100))
    for _ in range(3):
        assert await _acquired(slots)
    assert not await _acquired(slots)
    slots.release()
    assert await _acquired(slots)
    assert slots.in_flight == 3


async def test_slots_beyond_the_reserved_ones_draw_on_the_shared_budget() -> None:
    budget = Permits(2)
    a, b = Slots(10, budget, reserved=1), Slots(10, budget, reserved=1)
    assert await _acquired(a)  # reserved: the budget is untouched
    assert budget.free == 2
    assert await _acquired(a)
    assert await _acquired(a)  # two borrowed: the budget is spent
    assert not await _acquired(a)
    assert await _acquired(b)  # b's reserved slot does not wait for a's borrowing
    assert not await _acquired(b)
    a.release()
    assert await _acquired(b)  # the permit a gave back


async def test_a_hung_neighbour_cannot_starve_the_reserved_slots() -> None:
    budget = Permits(8)
    hung = Slots(64, budget, reserved=4)
    while await _acquired(hung):
        pass
    assert hung.in_flight == 12  # 4 reserved + the whole budget
    healthy = Slots(64, budget, reserved=4)
    for _ in range(4):
        assert await _acquired(healthy)


async def test_every_permit_returns_once_all_slots_are_released() -> None:
    budget = Permits(5)
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
    assert budget.free == 5
    for _ in range(8):
        assert await _acquired(slots)


async def test_a_stream_waiting_on_a_spent_budget_takes_its_own_reserved_slot_when_it_frees() -> (
    None
):
    budget = Permits(2)
    hung = Slots(64, budget, reserved=1)
    for _ in range(3):
        assert await _acquired(hung)  # its reserved slot and the whole budget
    healthy = Slots(64, budget, reserved=2)
    assert await _acquired(healthy)
    assert await _acquired(healthy)
    waiter = asyncio.create_task(healthy.acquire())  # reserved and budget both taken
    await asyncio.sleep(0)
    assert not waiter.done()
    healthy.release()  # one of its own deliveries ends
    await asyncio.wait_for(waiter, 1)
    assert healthy.in_flight == 2
    assert budget.free == 0  # the hung stream still holds both permits
    for _ in range(2):
        healthy.release()
    for _ in range(3):
        hung.release()
    assert budget.free == 2


async def test_cancelled_while_waiting_for_either_gives_everything_back() -> None:
    budget = Permits(1)
    other = Slots(8, budget, reserved=0)
    assert await _acquired(other)  # the whole budget
    slots = Slots(8, budget, reserved=1)
    assert await _acquired(slots)  # its reserved slot
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert slots.in_flight == 1
    slots.release()
    other.release()
    assert budget.free == 1
    for _ in range(2):  # its reserved slot and the budget's permit, both back
        assert await _acquired(slots)
