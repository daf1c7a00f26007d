"""Delivery slots: a stream's own limit, the shared budget, the reserved slots, and the width
(narrowed to one while the endpoint does not answer, widened by one per success)."""

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


async def test_each_narrowing_halves_the_width_down_to_one() -> None:
    slots = Slots(64, Permits(1000))
    widths = []
    reached_one = []
    for _ in range(8):
        reached_one.append(slots.narrow())
        widths.append(slots.width)
    assert widths == [32, 16, 8, 4, 2, 1, 1, 1]
    assert reached_one == [False, False, False, False, False, True, False, False], (
        "reported once, when it gets to one"
    )


async def test_a_narrowed_stream_admits_no_more_than_its_width() -> None:
    slots = Slots(8, Permits(1000))
    for _ in range(4):
        assert await _acquired(slots)
    while not slots.narrow():
        pass
    assert slots.width == 1
    assert not await _acquired(slots), "four in flight, width one: nothing more goes"
    for _ in range(3):
        slots.release()
    assert not await _acquired(slots), "one still in flight fills the width"
    slots.release()
    assert await _acquired(slots)
    assert slots.in_flight == 1


async def test_successes_widen_it_back_to_the_limit_and_wake_waiters() -> None:
    slots = Slots(4, Permits(1000))
    while not slots.narrow():
        pass
    assert await _acquired(slots)
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    restored = [slots.widen() for _ in range(3)]
    await asyncio.wait_for(waiting, 1.0)  # the first widening let it in
    assert restored == [False, False, True], "reported once, when the limit is back"
    assert slots.width == 4
    assert not slots.widen(), "never beyond the limit"
    assert slots.in_flight == 2
    assert await _acquired(slots)
    assert await _acquired(slots)
    assert not await _acquired(slots), "the stream's own limit still holds"


async def test_a_cancelled_waiter_neither_leaks_a_slot_nor_swallows_a_wakeup() -> None:
    slots = Slots(4, Permits(1000))
    while not slots.narrow():
        pass
    assert await _acquired(slots)
    cancelled = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    slots.release()
    await asyncio.wait_for(second, 1.0)
    assert slots.in_flight == 1
    slots.release()
    for _ in range(3):
        slots.widen()
    for _ in range(4):
        assert await _acquired(slots)
    assert slots.in_flight == 4
