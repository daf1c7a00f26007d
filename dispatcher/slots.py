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
from typing import Any

#: Slots of each stream that do not draw on the shared budget.
RESERVED = 4


class Slots:
    """One stream's delivery slots, drawing on a budget shared with the other streams."""

    def __init__(self, limit: int, budget: asyncio.Semaphore, reserved: int = RESERVED) -> None:
        self.limit = limit
        self._own = asyncio.Semaphore(limit)
        self._reserved = asyncio.Semaphore(min(reserved, limit))
        self._budget = budget
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
            borrowed = await self._reserved_or_budget()
        except BaseException:
            self._own.release()
            raise
        self._borrowed += borrowed
        self._held += 1

    async def _reserved_or_budget(self) -> bool:
        """Take a reserved slot (False) or a budget permit (True)."""
        if not self._reserved.locked():
            await self._reserved.acquire()  # free: does not wait
            return False
        if not self._budget.locked():
            await self._budget.acquire()
            return True
        # Both taken: wait for whichever frees first (a reserved slot when one of this
        # stream's deliveries ends, a permit when any stream's borrowed delivery ends).
        reserved = asyncio.ensure_future(self._reserved.acquire())
        budget = asyncio.ensure_future(self._budget.acquire())
        try:
            await asyncio.wait((reserved, budget), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self._settle(reserved, budget, keep=False)
            raise
        return await self._settle(reserved, budget, keep=True)

    async def _settle(
        self, reserved: asyncio.Future[Any], budget: asyncio.Future[Any], *, keep: bool
    ) -> bool:
        """Stop both waits; keep one acquired slot (the reserved one first) when ``keep``, and
        give back anything else they acquired. Returns whether the kept one is borrowed."""
        for waiter in (reserved, budget):
            waiter.cancel()
        await asyncio.gather(reserved, budget, return_exceptions=True)
        got_reserved = reserved.done() and not reserved.cancelled()
        got_budget = budget.done() and not budget.cancelled()
        if got_reserved and not keep:
            self._reserved.release()
        if got_budget and (not keep or got_reserved):
            self._budget.release()
        if keep and not got_reserved and not got_budget:
            raise asyncio.CancelledError  # only a cancellation wakes the wait with neither
        return keep and not got_reserved

    def release(self) -> None:
        """Give a slot back: a borrowed permit first, so the budget frees up for others."""
        self._held -= 1
        if self._borrowed:
            self._borrowed -= 1
            self._budget.release()
        else:
            self._reserved.release()
        self._own.release()
