"""Offset bookkeeping for at-least-once commits while deliveries run concurrently.

Records of a partition are delivered concurrently and finish in any order, but Kafka commits
one offset per partition meaning "everything before this is handled". So the committable
offset is the lowest offset still in flight, or one past the last offset seen when nothing is
in flight. Committing anything higher could lose a record on a crash; committing this never
does (at worst a record is delivered twice).

"Done" means the dispatcher no longer needs the record in the source partition: delivered,
handed to a retry tier, dead-lettered, filtered out, or dropped because its stream is gone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class PartitionOffsets:
    """In-flight and done offsets of one partition.

    Offsets are added in increasing order (Kafka fetches a partition in order) but may have
    gaps (compaction, transaction markers, records filtered before they got here). In-flight
    offsets sit in a deque in that order; ``done`` only removes an offset from the pending set,
    and the head of the deque is popped lazily once it is done. Each offset is pushed and
    popped once, so every operation is amortized O(1).
    """

    __slots__ = ("_last_added", "_order", "_pending")

    def __init__(self) -> None:
        """Start with nothing seen."""
        self._order: deque[int] = deque()
        self._pending: set[int] = set()
        self._last_added: int | None = None

    def add(self, offset: int) -> None:
        """Record that ``offset`` was fetched and is now in flight.

        Raises ``ValueError`` unless it is higher than every offset added before: a repeat or a
        step back means the consumer was rewound, and the partition must be dropped and
        tracked afresh instead.
        """
        if self._last_added is not None and offset <= self._last_added:
            raise ValueError(
                f"offsets must increase within a partition: got {offset} after {self._last_added}"
            )
        self._order.append(offset)
        self._pending.add(offset)
        self._last_added = offset

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
        return self._last_added + 1

    def pending(self) -> int:
        """Return how many offsets are in flight."""
        return len(self._pending)


class OffsetTracker:
    """``PartitionOffsets`` for every assigned (topic, partition), plus what was committed.

    A revoked partition is dropped; ``done`` calls that arrive for it afterwards (deliveries
    that were in flight during the rebalance) are ignored, since its offsets now belong to
    another consumer. Because (topic, partition, offset) carries no assignment generation, the
    caller must let the in-flight deliveries of a revoked partition finish (or abandon them
    without calling ``done``) before the same partition can be assigned and tracked again;
    otherwise a late ``done`` could complete the new assignment's copy of that offset.
    """

    __slots__ = ("_committed", "_partitions")

    def __init__(self) -> None:
        """Start with no partitions."""
        self._partitions: dict[tuple[str, int], PartitionOffsets] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def add(self, topic: str, partition: int, offset: int) -> None:
        """Record that a fetched record is in flight (see ``PartitionOffsets.add``)."""
        key = (topic, partition)
        offsets = self._partitions.get(key)
        if offsets is None:
            offsets = self._partitions[key] = PartitionOffsets()
        offsets.add(offset)

    def done(self, topic: str, partition: int, offset: int) -> None:
        """Record that a record needs nothing more; ignored if its partition was dropped."""
        offsets = self._partitions.get((topic, partition))
        if offsets is not None:
            offsets.done(offset)

    def committable(self) -> list[tuple[str, int, int]]:
        """Return ``(topic, partition, offset)`` for each partition worth committing now.

        Only partitions whose committable offset differs from the one last passed to
        ``mark_committed`` are listed, sorted by topic and partition.
        """
        result: list[tuple[str, int, int]] = []
        for key in sorted(self._partitions):
            offset = self._partitions[key].committable()
            if offset is not None and offset != self._committed.get(key):
                result.append((key[0], key[1], offset))
        return result

    def mark_committed(self, committed: Iterable[tuple[str, int, int]]) -> None:
        """Remember offsets the broker accepted, so ``committable`` stops listing them.

        Entries for partitions no longer tracked (dropped meanwhile) are ignored.
        """
        for topic, partition, offset in committed:
            key = (topic, partition)
            if key in self._partitions:
                self._committed[key] = offset

    def drop(self, topic: str, partition: int) -> None:
        """Forget a revoked partition, its in-flight offsets and what was committed for it."""
        key = (topic, partition)
        self._partitions.pop(key, None)
        self._committed.pop(key, None)

    def pending_total(self) -> int:
        """Return how many records are in flight across all partitions."""
        return sum(offsets.pending() for offsets in self._partitions.values())
