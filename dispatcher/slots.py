"""Delivery slots: how many of a stream's deliveries may be in flight at once.

Each stream has its own limit (``max_in_flight``). A process serving many streams also has
one budget shared by all of them (``max_in_flight_total``), so its memory stays bounded
however many streams it runs: a slot beyond a stream's first :data:`RESERVED` also takes a
permit from the budget. The reserved slots never wait for the budget, so a stream whose
endpoint hangs (its slots all held until the timeout) cannot starve its neighbours: they
still deliver through their own reserved slots.

A stream whose endpoint stops answering (timeouts, refused connections) also narrows itself:
after :data:`NARROW_AFTER` failed attempts in a row, each further unanswered attempt halves
how many of its slots may be in flight (down to one), and each success widens it by one
again (doubling per round trip once the endpoint answers). A hanging endpoint at 64 in flight
and a 1 s timeout otherwise costs 64 timed-out requests a second, plus their retries, of work
shared with every healthy stream; narrowed it costs one. The stream's fresh events and its
retries share the narrowed width (each still attempted, one at a time, and routed as usual);
other streams are untouched. In the isolation benchmark (9 healthy streams beside one whose
endpoint never answers) this, with the retry tiers' timer grain, took the healthy streams'
paced p99 from up to 1.7x that of 10 healthy streams to within 1.14x (three runs).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TypeVar

#: Slots of each stream that do not draw on the shared budget.
RESERVED = 4
#: Failed attempts in a row before unanswered ones start narrowing a stream: an endpoint that
#: times out now and then (but answers the rest) keeps its full concurrency.
NARROW_AFTER = 8

T = TypeVar("T")


def _wake_first(waiters: deque[asyncio.Future[T]], value: T) -> bool:
    """Resolve the first waiter still waiting with ``value``; False if none is."""
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(value)
            return True
    return False


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
        if not _wake_first(self._waiters, self):
            self.free += 1


class Slots:
    """One stream's delivery slots, drawing on a budget shared with the other streams."""

    def __init__(self, limit: int, budget: Permits, reserved: int = RESERVED) -> None:
        self.limit = limit
        #: How many may be in flight now: ``limit``, or less while the endpoint does not answer.
        self.width = limit
        self._own = asyncio.Semaphore(limit)
        self._narrowed: deque[asyncio.Future[None]] = deque()  # waiting for the width
        self._budget = budget
        self._reserved = Permits(min(reserved, limit))
        self._held = 0
        self._admitted = 0  # held, or past the width check and waiting for a slot or permit
        self._borrowed = 0  # held slots that took a budget permit; the rest took a reserved one

    @property
    def in_flight(self) -> int:
        """Slots held now."""
        return self._held

    def narrow(self) -> bool:
        """The endpoint did not answer: halve the width (at least 1). True when it reached 1
        just now."""
        if self.width == 1:
            return False
        self.width = max(1, self.width // 2)
        return self.width == 1

    def widen(self) -> bool:
        """An attempt succeeded: one more slot may be in flight. True when that restores the
        full width."""
        if self.width >= self.limit:
            return False
        self.width += 1
        self._wake_narrowed()
        return self.width == self.limit

    def has_room(self) -> bool:
        """Whether :meth:`acquire` would take a slot now without waiting."""
        return (
            not self._own.locked()
            and self._admitted < self.width
            and (self._reserved.free > 0 or self._budget.free > 0)
        )

    async def acquire(self) -> None:
        """Wait for a free slot of the stream: within its width, then a reserved one or a
        budget permit, whichever comes first."""
        await self._own.acquire()
        try:
            while self._admitted >= self.width:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._narrowed.append(waiter)
                await waiter
            self._admitted += 1  # before the wait below, so the width check stays exact
            try:
                pool = await self._reserved_or_budget()
            except BaseException:
                self._admitted -= 1
                raise
        except BaseException:
            self._own.release()
            self._wake_narrowed()
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
        self._admitted -= 1
        if self._borrowed:
            self._borrowed -= 1
            self._budget.give()
        else:
            self._reserved.give()
        self._own.release()
        self._wake_narrowed()

    def _wake_narrowed(self) -> None:
        """Let the first waiter for the width re-check it (it waits again if still too many)."""
        _wake_first(self._narrowed, None)
