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

#: Slots of each stream that do not draw on the shared budget.
RESERVED = 4


class Slots:
    """One stream's delivery slots, drawing on a budget shared with the other streams."""

    def __init__(self, limit: int, budget: asyncio.Semaphore, reserved: int = RESERVED) -> None:
        self.limit = limit
        self._own = asyncio.Semaphore(limit)
        self._budget = budget
        self._reserved = min(reserved, limit)
        self._held = 0
        self._borrowed = 0  # held slots that took a budget permit (at most _held)

    @property
    def in_flight(self) -> int:
        """Slots held now."""
        return self._held

    async def acquire(self) -> None:
        """Wait for a free slot of the stream (and, beyond the reserved ones, a budget permit)."""
        await self._own.acquire()
        if self._held >= self._reserved:
            try:
                await self._budget.acquire()
            except BaseException:
                self._own.release()
                raise
            self._borrowed += 1
        self._held += 1

    def release(self) -> None:
        """Give a slot back (and a budget permit while any is held)."""
        self._held -= 1
        if self._borrowed:
            self._borrowed -= 1
            self._budget.release()
        self._own.release()
