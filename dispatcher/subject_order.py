"""Ordered delivery per subject (a stream's ``delivery.ordering: subject``).

Every lifecycle record is keyed by its subject (the user or organization id), so one
subject's events lie in one partition, in the order they happened. An ordered stream keeps
that order: per subject, at most one event is in flight, and the next starts only when the one
before it ended (delivered, dead-lettered or skipped). Different subjects still deliver
concurrently, up to ``max_in_flight``.

A failed event of an ordered stream does not go to a retry tier. It waits *in place* for its
next attempt (holding no delivery slot), and its subject's later events wait behind it:
they are **parked** (marked ``parked`` in the delivery history, counted by the
``tidings_parked_subjects`` and ``tidings_parked_events`` gauges). Every other subject flows
on. When the waiting event is delivered or dead-lettered, the parked events go next, in order.
A dead letter does not stop its subject: the later events continue, and the dead letter's
reason says that this subject's order was broken there (:data:`~dispatcher.engine.ORDER_BROKEN`).

Why in place rather than through the retry tiers, with the parked events kept *unfinished*
in the lifecycle partition: nothing needed to keep the order or to avoid a loss lives only in
memory. The committed offset never passes a blocked event (nor, so, its parked followers), so
after a crash or a partition move the next owner reads them again from Kafka, attempts the
blocked event first and parks its followers behind it afresh: the parked state is rebuilt by
re-reading, with no record of its own to keep consistent. Through the tiers instead, a
subject's head would be attempted by whichever process consumes the tier partition, and its
release would have to travel back to the lifecycle partition's owner through Kafka as well;
after a crash, which subjects are blocked would have to be rebuilt by scanning every tier.

The price, documented in the README: while a subject is blocked, its partition's committed
offset stays at the blocked event (at most the stream's retry schedule, after which it is
dead-lettered), so a crash meanwhile re-sends what other subjects received since (at-least-once
duplicates, each subject's in order again); a restart attempts a blocked event at once and its
schedule starts over. Parked events are held in memory up to :data:`MAX_WAITING` per stream;
beyond that the stream stops fetching (polling on, see
:meth:`~dispatcher.stream_worker.CommittingWorker.wait_polling`) until one ends. The offset
bookkeeping holds every offset read past a blocked event (about 40 bytes each): once a
partition has been read :data:`MAX_SPAN` records past its oldest unfinished ordered event,
the stream stops fetching until that event ends, so neither memory nor the re-sends after a
crash grow without bound.

Redelivery and dead-letter replay go through the retry tiers as for any stream: they are
deliberate sends outside the order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from dispatcher.engine import End
from dispatcher.jobs import Job

#: Events of an ordered stream held in memory while they wait for their subject's turn.
MAX_WAITING = 10_000

#: Records a partition may be read past its oldest unfinished ordered event (see above) ...
MAX_SPAN = 1_000_000
#: ... checked once per this many ordered records.
SPAN_CHECK_EVERY = 1_000

#: A subject: the partition its events lie in and their record key.
Subject = tuple[int, bytes]


@dataclass(eq=False)
class Line:
    """One subject's events that have not ended, in order: the first is being attempted (or
    waits for its next attempt), the rest wait for their turn."""

    entries: deque[tuple[Job, asyncio.Task[End]]] = field(default_factory=deque)
    #: The first event failed and waits for its next attempt: the rest are parked.
    blocked: bool = False


class SubjectLines:
    """The lines of one ordered stream's subjects, and the parked counts."""

    def __init__(self) -> None:
        """Start with no subject waiting."""
        self._lines: dict[Subject, Line] = {}
        #: Subjects whose first event waits for a retry.
        self.parked_subjects = 0
        #: Events waiting behind such a subject's first event.
        self.parked_events = 0

    def last(self, subject: Subject) -> asyncio.Task[End] | None:
        """The task of the subject's latest event that has not ended (None: free to go)."""
        line = self._lines.get(subject)
        return line.entries[-1][1] if line is not None and line.entries else None

    def join(self, subject: Subject, job: Job, task: asyncio.Task[End]) -> bool:
        """Put an event at the end of its subject's line; True when it is parked (its
        subject is blocked)."""
        line = self._lines.setdefault(subject, Line())
        line.entries.append((job, task))
        if line.blocked:
            self.parked_events += 1
        return line.blocked

    def block(self, subject: Subject) -> list[Job]:
        """The subject's first event waits for a retry: returns the events parked by it now
        (none if it was blocked already)."""
        line = self._lines.get(subject)
        if line is None or line.blocked:
            return []
        line.blocked = True
        parked = [job for job, _task in list(line.entries)[1:]]
        self.parked_subjects += 1
        self.parked_events += len(parked)
        return parked

    def ended(self, subject: Subject, task: asyncio.Task[End]) -> None:
        """An event's task ended: the next of its subject goes (the line unblocks)."""
        line = self._lines.get(subject)
        if line is None:
            return  # dropped with its partition
        if line.entries and line.entries[0][1] is task:
            line.entries.popleft()
            if line.blocked:
                line.blocked = False
                self.parked_subjects -= 1
                self.parked_events -= len(line.entries)
        else:  # not the first: only when cancelled with its partition (defensive)
            line.entries = deque(e for e in line.entries if e[1] is not task)
        if not line.entries:
            del self._lines[subject]

    def drop(self, partitions: Iterable[int]) -> list[asyncio.Task[End]]:
        """Forget the lines of lost partitions; returns their tasks (to be cancelled: the
        partition's next owner attempts them again, in order)."""
        lost = set(partitions)
        tasks: list[asyncio.Task[End]] = []
        for subject in [s for s in self._lines if s[0] in lost]:
            line = self._lines.pop(subject)
            if line.blocked:
                self.parked_subjects -= 1
                self.parked_events -= len(line.entries) - 1
            tasks.extend(task for _job, task in line.entries)
        return tasks

    def oldest(self, partition: int) -> tuple[int, asyncio.Task[End]] | None:
        """The lowest offset of a partition's first events still in line, and its task."""
        heads = [
            (line.entries[0][0].origin_offset, line.entries[0][1])
            for subject, line in self._lines.items()
            if subject[0] == partition and line.entries
        ]
        return min(heads, key=lambda head: head[0]) if heads else None

    def __len__(self) -> int:
        """Subjects with an event that has not ended."""
        return len(self._lines)
