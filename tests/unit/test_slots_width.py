"""A stream whose endpoint stops answering narrows to one delivery in flight, and widens again
by one slot per success."""

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
