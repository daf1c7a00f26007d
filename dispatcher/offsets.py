"""Offset bookkeeping for at-least-once commits while deliveries run concurrently.

Records of a partition are delivered concurrently and finish in any order, but Kafka commits
one offset per partition meaning "everything before this is handled". So the committable
offset is the lowest offset still in flight, or one past the last offset seen when nothing is
in flight. Committing anything higher could lose a record on a crash; committing this never
does (at worst a record is delivered twice). Each commit also records which offsets above
it are already finished (``dispatcher.offset_metadata``), so that the next owner of the
partition, after a crash or a rebalance, skips them and repeats only what was in flight.

"Done" means the dispatcher no longer needs the record in the source partition: delivered,
handed to a retry tier, dead-lettered, filtered out, or dropped because its stream is gone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from dispatcher import offset_metadata
from dispatcher.offset_metadata import Range


class PartitionOffsets:
    """In-flight and done offsets of one assignment of one partition.

    Offsets are added in increasing order (Kafka fetches a partition in order) but may have
    gaps (compaction, transaction markers). In-flight offsets sit in a deque in that order;
    ``done`` only removes an offset from the pending set, and the head of the deque is popped
    lazily once it is done, so the head is always in flight. Each offset is pushed and popped
    once: every operation but ``finished_above`` is amortized O(1).

    ``finished`` are ranges known to be finished before this assignment began (read from the
    committed metadata): ``add`` reports them, so their records are not handled again.
    """

    __slots__ = ("_last_added", "_order", "_pending", "_skip", "_skip_index")

    def __init__(self, finished: Sequence[Range] = ()) -> None:
        """Start with nothing seen; ``finished`` sorted and disjoint."""
        self._order: deque[int] = deque()
        self._pending: set[int] = set()
        self._last_added: int | None = None
        self._skip = finished
        self._skip_index = 0

    def add(self, offset: int) -> bool:
        """Record that ``offset`` was fetched; return False when it was finished before this
        assignment (it is recorded as done and must not be handled again), True when it is
        now in flight.

        Raises ``ValueError`` unless it is higher than every offset added before: a repeat or a
        step back means the consumer was rewound, and the partition must be tracked afresh.
        """
        if self._last_added is not None and offset <= self._last_added:
            raise ValueError(
                f"offsets must increase within a partition: got {offset} after {self._last_added}"
            )
        self._last_added = offset
        if self._skip and self._known_finished(offset):
            return False
        self._order.append(offset)
        self._pending.add(offset)
        return True

    def _known_finished(self, offset: int) -> bool:
        # Offsets come in increasing order: ranges below the offset are passed for good.
        skip, index = self._skip, self._skip_index
        while index < len(skip) and skip[index][1] <= offset:
            index += 1
        self._skip_index = index
        return index < len(skip) and skip[index][0] <= offset

    def done(self, offset: int) -> None:
        """Record that ``offset`` needs nothing more; raises ``ValueError`` if not in flight."""
        try:
            self._pending.remove(offset)
        except KeyError:
            raise ValueError(f"offset {offset} is not in flight") from None
        order = self._order
        while order and order[0] not in self._pending:
            order.popleft()

    def committable(self) -> int | None:
        """Return the offset to commit (the next one to read), or None if nothing was seen.

        That is the lowest offset still in flight, or the last offset added plus one when
        every added offset is done.
        """
        if self._order:
            return self._order[0]
        if self._last_added is None:
            return None
        # Ranges known finished right after the last offset seen are passed too.
        offset = self._last_added + 1
        for start, end in self._skip[self._skip_index :]:
            if start > offset:
                break
            offset = max(offset, end)
        return offset

    def finished_above(self) -> Iterator[Range]:
        """The ranges ``[start, end)`` above ``committable()`` known to need nothing more,
        sorted: offsets seen and done (and gaps between them), then ranges finished before
        this assignment that were not fetched yet. Lazy: the caller stops when it has enough.
        """
        last = self._last_added
        committable = self.committable()
        if last is None or committable is None:
            return
        yield from _merged(self._seen_finished(last), self._unseen_finished(committable))

    def _seen_finished(self, last: int) -> Iterator[Range]:
        pending = self._pending
        run_start: int | None = None
        for offset in self._order:  # the head is in flight
            if offset in pending:
                if run_start is not None and run_start < offset:
                    yield (run_start, offset)
                run_start = offset + 1
        if run_start is not None and run_start <= last:
            yield (run_start, last + 1)

    def _unseen_finished(self, committable: int) -> Iterator[Range]:
        # Offsets after the last one seen; the committable offset itself is never finished.
        for start, end in self._skip[self._skip_index :]:
            if end > committable + 1:
                yield (max(start, committable + 1), end)

    def pending(self) -> int:
        """Return how many offsets are in flight."""
        return len(self._pending)


def _merged(*sorted_runs: Iterable[Range]) -> Iterator[Range]:
    """Ranges of runs that follow one another, adjacent ones joined."""
    held: Range | None = None
    for run in sorted_runs:
        for start, end in run:
            if held is not None and start <= held[1]:
                held = (held[0], max(held[1], end))
                continue
            if held is not None:
                yield held
            held = (start, end)
    if held is not None:
        yield held


class Commit(NamedTuple):
    """One partition's offset to commit, with its finished-offsets metadata."""

    topic: str
    partition: int
    offset: int
    metadata: str


class _Assignment:
    """A partition while this consumer owns it: its offsets, and the epoch that tells its
    completions apart from those of an earlier assignment of the same partition."""

    __slots__ = ("epoch", "finished", "offsets")

    def __init__(self, epoch: int, finished: list[Range]) -> None:
        self.epoch = epoch
        self.finished = finished
        self.offsets = PartitionOffsets(finished)


class OffsetTracker:
    """``PartitionOffsets`` for every assigned (topic, partition), plus what the broker
    confirmed as committed.

    Only assigned partitions are tracked: ``add`` refuses a record of a partition that is not
    (a record fetched just before its partition was revoked belongs to the next owner). Each
    assignment gets a new epoch; ``add`` returns it and ``done`` must present it, so a late
    completion of a revoked assignment never completes the same offset of a later one. A
    step back within an assignment (the consumer was rewound) starts a new epoch likewise.
    """

    __slots__ = ("_committed", "_epochs", "_partitions")

    def __init__(self) -> None:
        """Start with no partitions."""
        self._partitions: dict[tuple[str, int], _Assignment] = {}
        self._committed: dict[tuple[str, int], tuple[int, str]] = {}
        self._epochs = 0

    def assign(
        self, topic: str, partition: int, committed: int | None = None, metadata: str | None = None
    ) -> None:
        """Track a partition afresh, from what the group committed for it (offset and
        metadata, when it committed anything)."""
        key = (topic, partition)
        self._epochs += 1
        self._committed.pop(key, None)
        finished: list[Range] = []
        if committed is not None and committed >= 0:  # librdkafka: < 0 when never committed
            finished = offset_metadata.decode(committed, metadata)
            self._committed[key] = (committed, metadata or "")
        self._partitions[key] = _Assignment(self._epochs, finished)

    def drop(self, topic: str, partition: int) -> None:
        """Forget a revoked partition, its in-flight offsets and what was committed for it."""
        key = (topic, partition)
        self._partitions.pop(key, None)
        self._committed.pop(key, None)

    def add(self, topic: str, partition: int, offset: int) -> int | None:
        """Record that a fetched record is in flight and return its epoch, or None when the
        record must not be handled: its partition is not assigned, or it was finished before
        this assignment (see ``PartitionOffsets.add``)."""
        assignment = self._partitions.get((topic, partition))
        if assignment is None:
            return None
        try:
            fresh = assignment.offsets.add(offset)
        except ValueError:  # rewound: what was in flight is the old epoch's
            self._epochs += 1
            assignment.epoch = self._epochs
            assignment.offsets = PartitionOffsets(assignment.finished)
            fresh = assignment.offsets.add(offset)
        return assignment.epoch if fresh else None

    def done(self, topic: str, partition: int, offset: int, epoch: int) -> None:
        """Record that a record needs nothing more; ignored if ``epoch`` is not the
        partition's current one (revoked or rewound since the record was added)."""
        assignment = self._partitions.get((topic, partition))
        if assignment is not None and assignment.epoch == epoch:
            assignment.offsets.done(offset)

    def committable(self, max_metadata: int = offset_metadata.MAX_METADATA_CHARS) -> list[Commit]:
        """Return what to commit for each partition whose offset or finished offsets changed
        since the broker last confirmed a commit of it, sorted by topic and partition.

        Until ``mark_committed`` confirms it, the same commit keeps being listed: a commit
        that failed is retried by committing what is listed next time.
        """
        result: list[Commit] = []
        for key in sorted(self._partitions):
            offsets = self._partitions[key].offsets
            offset = offsets.committable()
            if offset is None:
                continue
            metadata = offset_metadata.encode(offset, offsets.finished_above(), max_metadata)
            if (offset, metadata) != self._committed.get(key):
                result.append(Commit(key[0], key[1], offset, metadata))
        return result

    def mark_committed(self, committed: Iterable[Commit]) -> None:
        """Remember commits the broker confirmed, so ``committable`` stops listing them.

        Entries for partitions no longer tracked (dropped meanwhile) are ignored.
        """
        for topic, partition, offset, metadata in committed:
            key = (topic, partition)
            if key in self._partitions:
                self._committed[key] = (offset, metadata)

    def pending_total(self) -> int:
        """Return how many records are in flight across all partitions."""
        return sum(a.offsets.pending() for a in self._partitions.values())
