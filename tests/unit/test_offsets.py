"""Tests for dispatcher.offsets: committable offsets with concurrent, out-of-order completion."""

from __future__ import annotations

import random

import pytest

from dispatcher.offsets import OffsetTracker, PartitionOffsets


def apply(offsets: PartitionOffsets, steps: list[tuple[str, list[int]]]) -> None:
    """Run ("add" | "done", [offsets]) steps against ``offsets``."""
    for action, values in steps:
        for value in values:
            getattr(offsets, action)(value)


@pytest.mark.parametrize(
    ("steps", "committable", "pending"),
    [
        ([], None, 0),
        ([("add", [0])], 0, 1),
        ([("add", [0]), ("done", [0])], 1, 0),
        ([("add", list(range(10))), ("done", [5, 6, 7])], 0, 7),
        ([("add", list(range(10))), ("done", [5, 6, 7, 0, 1, 2, 3, 4])], 8, 2),
        ([("add", list(range(10))), ("done", [5, 6, 7, 0, 1, 2, 3, 4, 8, 9])], 10, 0),
        ([("add", list(range(10))), ("done", [9, 8, 7, 6, 5, 4, 3, 2, 1])], 0, 1),
        ([("add", list(range(10))), ("done", [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])], 10, 0),
        ([("add", [3, 7, 10])], 3, 3),
        ([("add", [3, 7, 10]), ("done", [7])], 3, 2),
        ([("add", [3, 7, 10]), ("done", [3, 7])], 10, 1),
        ([("add", [3, 7, 10]), ("done", [3, 7, 10])], 11, 0),
        ([("add", [3]), ("done", [3]), ("add", [7])], 7, 1),
        ([("add", [100, 101]), ("done", [101])], 100, 1),
    ],
)
def test_partition_committable(
    steps: list[tuple[str, list[int]]], committable: int | None, pending: int
) -> None:
    """Committable is the lowest in-flight offset, or last seen + 1 once all are done."""
    offsets = PartitionOffsets()
    apply(offsets, steps)
    assert offsets.committable() == committable
    assert offsets.pending() == pending


def test_out_of_order_completion_in_stages() -> None:
    """Done 5-7 keeps 0; done 0-4 moves to 8; done 8-9 moves to 10."""
    offsets = PartitionOffsets()
    for offset in range(10):
        offsets.add(offset)
    for offset in (5, 6, 7):
        offsets.done(offset)
    assert offsets.committable() == 0
    for offset in range(5):
        offsets.done(offset)
    assert offsets.committable() == 8
    offsets.done(8)
    offsets.done(9)
    assert offsets.committable() == 10


def test_gaps_in_offsets() -> None:
    """With gaps, done 3 and 7 of 3/7/10 gives 10, and done 10 gives 11."""
    offsets = PartitionOffsets()
    for offset in (3, 7, 10):
        offsets.add(offset)
    offsets.done(3)
    offsets.done(7)
    assert offsets.committable() == 10
    offsets.done(10)
    assert offsets.committable() == 11


@pytest.mark.parametrize(
    ("steps", "bad_action", "bad_offset", "message"),
    [
        ([("add", [5])], "add", 5, "must increase"),
        ([("add", [5])], "add", 4, "must increase"),
        ([("add", [5]), ("done", [5])], "add", 5, "must increase"),
        ([], "done", 0, "not in flight"),
        ([("add", [5])], "done", 6, "not in flight"),
        ([("add", [5]), ("done", [5])], "done", 5, "not in flight"),
        ([("add", [5, 6]), ("done", [6])], "done", 6, "not in flight"),
    ],
)
def test_partition_misuse_raises(
    steps: list[tuple[str, list[int]]], bad_action: str, bad_offset: int, message: str
) -> None:
    """Adding a non-increasing offset or completing one not in flight raises ValueError."""
    offsets = PartitionOffsets()
    apply(offsets, steps)
    before = (offsets.committable(), offsets.pending())
    with pytest.raises(ValueError, match=message):
        getattr(offsets, bad_action)(bad_offset)
    assert (offsets.committable(), offsets.pending()) == before


@pytest.mark.parametrize("seed", range(5))
def test_random_completion_order_matches_a_simple_model(seed: int) -> None:
    """Against a brute-force model, every random completion order gives the same answers."""
    rng = random.Random(seed)
    all_offsets = sorted(rng.sample(range(1000), 200))
    offsets = PartitionOffsets()
    in_flight: set[int] = set()
    added: list[int] = []
    for offset in all_offsets:
        offsets.add(offset)
        added.append(offset)
        in_flight.add(offset)
        while in_flight and rng.random() < 0.5:
            finished = rng.choice(sorted(in_flight))
            offsets.done(finished)
            in_flight.remove(finished)
            expected = min(in_flight) if in_flight else added[-1] + 1
            assert offsets.committable() == expected
            assert offsets.pending() == len(in_flight)


def test_tracker_lists_only_advanced_partitions() -> None:
    """committable() lists partitions whose offset moved since mark_committed, sorted."""
    tracker = OffsetTracker()
    assert tracker.committable() == []
    for offset in range(3):
        tracker.add("b", 0, offset)
        tracker.add("a", 1, offset)
    tracker.add("a", 0, 40)
    assert tracker.committable() == [("a", 0, 40), ("a", 1, 0), ("b", 0, 0)]
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == []

    tracker.done("a", 1, 1)  # out of order: a/1 cannot move yet
    assert tracker.committable() == []
    tracker.done("a", 1, 0)
    tracker.done("b", 0, 0)
    assert tracker.committable() == [("a", 1, 2), ("b", 0, 1)]

    tracker.mark_committed([("a", 1, 2)])  # say only one commit was accepted
    assert tracker.committable() == [("b", 0, 1)]
    assert tracker.pending_total() == 1 + 1 + 2


def test_tracker_drop_forgets_a_revoked_partition() -> None:
    """A dropped partition is no longer listed and late done() calls for it are ignored."""
    tracker = OffsetTracker()
    tracker.add("t", 0, 10)
    tracker.add("t", 0, 11)
    tracker.add("t", 1, 5)
    tracker.mark_committed(tracker.committable())
    tracker.drop("t", 0)
    assert tracker.pending_total() == 1
    tracker.done("t", 0, 10)  # a delivery that was in flight during the rebalance
    tracker.done("t", 1, 5)
    assert tracker.committable() == [("t", 1, 6)]
    tracker.drop("t", 0)  # dropping twice is harmless
    tracker.drop("never", 3)


def test_tracker_reassigned_partition_starts_afresh() -> None:
    """After drop, the partition can be tracked again from a lower offset, and its last
    committed offset is forgotten so the first committable offset is listed again."""
    tracker = OffsetTracker()
    tracker.add("t", 0, 10)
    tracker.done("t", 0, 10)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == []
    tracker.drop("t", 0)
    tracker.add("t", 0, 11)
    tracker.done("t", 0, 11)
    tracker.mark_committed([])
    assert tracker.committable() == [("t", 0, 12)]

    tracker.drop("t", 0)
    tracker.add("t", 0, 3)  # rewound below what was seen before the drop
    assert tracker.committable() == [("t", 0, 3)]


def test_tracker_mark_committed_ignores_dropped_partitions() -> None:
    """Marking a partition dropped in the meantime does not resurrect it."""
    tracker = OffsetTracker()
    tracker.add("t", 0, 0)
    to_commit = tracker.committable()
    tracker.drop("t", 0)
    tracker.mark_committed(to_commit)
    tracker.add("t", 0, 0)
    assert tracker.committable() == [("t", 0, 0)]


def test_tracker_same_committable_twice_without_mark() -> None:
    """Until mark_committed, the same offset keeps being listed (a failed commit retries)."""
    tracker = OffsetTracker()
    tracker.add("t", 0, 0)
    tracker.done("t", 0, 0)
    assert tracker.committable() == [("t", 0, 1)]
    assert tracker.committable() == [("t", 0, 1)]


def test_tracker_passes_partition_misuse_through() -> None:
    """Completing an offset that is not in flight on a tracked partition still raises."""
    tracker = OffsetTracker()
    tracker.add("t", 0, 0)
    with pytest.raises(ValueError, match="not in flight"):
        tracker.done("t", 0, 1)
