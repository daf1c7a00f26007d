"""Delivery slots: how many of a stream's deliveries may be in flight at once.

Each stream has its own limit (``max_in_flight``). A process serving many streams also has
one budget shared by all of them (``max_in_flight_total``), so its memory stays bounded
however many streams it runs: a slot beyond a stream's first :data:`RESERVED` also takes a
permit from the budget. The reserved slots never wait for the budget, so a stream whose
endpoint hangs (its slots all held until the timeout) cannot starve its neighbours: they
still deliver through their own reserved slots.
"""

from __future__ import annotations

import asyncio
from collections import deque

#: Slots of each stream that do not draw on the shared budget.
RESERVED = 4


class Permits:
    """A count of permits handed to waiters in arrival order. One waiter may wait on several
    pools at once: the first pool to free a permit wakes it (the result names that pool) and
    the others skip it once it is done. Used for the budget shared by all of a process's
    streams and for each stream's reserved slots."""

    def __init__(self, permits: int) -> None:
        self.free = permits
        self._waiters: deque[asyncio.Future[Permits]] = deque()

    def take(self) -> bool:
        """Take a permit if one is free now."""
        if self.free > 0:
            self.free -= 1
            return True
        return False

    def wait(self, waiter: asyncio.Future[Permits]) -> None:
        """Hand the next returned permit to ``waiter``."""
        self._waiters.append(waiter)

    def give(self) -> None:
        """Return a permit: to the first waiter still waiting, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self)
                return
        self.free += 1


class Slots:
    """One stream's delivery slots, drawing on a budget shared with the other streams."""

    def __init__(self, limit: int, budget: Permits, reserved: int = RESERVED) -> None:
        self.limit = limit
        self._own = asyncio.Semaphore(limit)
        self._budget = budget
        self._reserved = Permits(min(reserved, limit))
        self._held = 0
        self._borrowed = 0  # held slots that took a budget permit; the rest took a reserved one

    @property
    def in_flight(self) -> int:
        """Slots held now."""
        return self._held

    async def acquire(self) -> None:
        """Wait for a free slot of the stream: a reserved one, or a budget permit, whichever
        comes first."""
        await self._own.acquire()
        try:
            pool = await self._reserved_or_budget()
        except BaseException:
            self._own.release()
            raise
        self._borrowed += pool is self._budget
        self._held += 1

    async def _reserved_or_budget(self) -> Permits:
        """Take a reserved slot or a budget permit; returns the pool it came from."""
        for pool in (self._reserved, self._budget):
            if pool.take():
                return pool
        # Both taken: one waiter queued on both, woken by whichever frees first (a reserved
        # slot when one of this stream's deliveries ends, a permit when any stream's borrowed
        # delivery ends).
        waiter: asyncio.Future[Permits] = asyncio.get_running_loop().create_future()
        self._reserved.wait(waiter)
        self._budget.wait(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed a slot, then cancelled
                waiter.result().give()
            raise

    def release(self) -> None:
        """Give a slot back: a borrowed permit first, so the budget frees up for others."""
        self._held -= 1
        if self._borrowed:
            self._borrowed -= 1
            self._budget.give()
        else:
            self._reserved.give()
        self._own.release()
