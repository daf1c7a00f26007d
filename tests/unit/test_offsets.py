"""Tests for dispatcher.offsets: committable offsets with concurrent, out-of-order completion,
the finished offsets above them, and assignments that come and go."""

from __future__ import annotations

import random

import pytest

from dispatcher import offset_metadata
from dispatcher.offsets import Commit, OffsetTracker, PartitionOffsets


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


def ranges_of(offsets: set[int]) -> list[tuple[int, int]]:
    """Sorted, joined ``[start, end)`` ranges covering exactly ``offsets``."""
    result: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if result and result[-1][1] == offset:
            result[-1] = (result[-1][0], offset + 1)
        else:
            result.append((offset, offset + 1))
    return result


@pytest.mark.parametrize(
    ("steps", "finished"),
    [
        ([], []),
        ([("add", [0])], []),
        ([("add", [0, 1, 2]), ("done", [1, 2])], [(1, 3)]),
        ([("add", [0, 1, 2, 3, 4]), ("done", [1, 3])], [(1, 2), (3, 4)]),
        ([("add", [0, 1, 2, 3, 4]), ("done", [0, 1, 3])], [(3, 4)]),
        ([("add", [0, 1, 2]), ("done", [0, 1, 2])], []),
        ([("add", [3, 7, 10]), ("done", [10])], [(4, 7), (8, 11)]),  # gaps count as finished
    ],
)
def test_finished_above_the_committable_offset(
    steps: list[tuple[str, list[int]]], finished: list[tuple[int, int]]
) -> None:
    """Offsets above the committable one that are done (and gaps between fetched offsets,
    which no record will ever fill) are listed as joined ranges; in-flight ones are not."""
    offsets = PartitionOffsets()
    apply(offsets, steps)
    assert list(offsets.finished_above()) == finished


def test_offsets_finished_before_the_assignment_are_skipped_and_kept() -> None:
    """With finished ranges from the committed metadata, add() reports those offsets (they
    are not handled again), the committable offset passes them once the head is done, and
    ranges not fetched yet are still listed so the next commit keeps them."""
    offsets = PartitionOffsets([(11, 13), (15, 20)])
    assert offsets.add(10) is True
    assert list(offsets.finished_above()) == [(11, 13), (15, 20)]
    assert offsets.add(11) is False
    assert offsets.add(12) is False
    assert offsets.add(13) is True
    assert offsets.add(15) is False
    assert offsets.committable() == 10
    assert list(offsets.finished_above()) == [(11, 13), (14, 20)]  # 14: a gap
    offsets.done(10)
    assert offsets.committable() == 13
    offsets.done(13)
    assert offsets.committable() == 20  # 16-19: finished before, not fetched yet
    assert list(offsets.finished_above()) == []
    assert offsets.pending() == 0


def test_offsets_finished_before_the_assignment_right_after_the_last_one_seen() -> None:
    """Once everything seen is done, the committable offset passes a known-finished range
    that follows directly, and the finished offsets listed lie above it."""
    offsets = PartitionOffsets([(5, 10), (12, 14)])
    assert offsets.add(3) is True
    offsets.done(3)
    assert offsets.committable() == 4
    assert list(offsets.finished_above()) == [(5, 10), (12, 14)]
    assert offsets.add(4) is True
    offsets.done(4)
    assert offsets.committable() == 10
    assert list(offsets.finished_above()) == [(12, 14)]
    assert offsets.add(11) is True
    offsets.done(11)
    assert offsets.committable() == 14
    assert list(offsets.finished_above()) == []


@pytest.mark.parametrize("seed", range(5))
def test_random_completion_order_matches_a_simple_model(seed: int) -> None:
    """Against a brute-force model, every random completion order gives the same committable
    offset, pending count and finished ranges (everything above the committable offset up to
    the last one seen, except what is in flight)."""
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
            above = set(range(expected + 1, added[-1] + 1)) - in_flight
            assert list(offsets.finished_above()) == ranges_of(above)


def test_tracker_ignores_records_of_partitions_it_does_not_hold() -> None:
    """A record of a partition never assigned, or revoked, is refused (None) and never
    becomes committable: it belongs to another consumer."""
    tracker = OffsetTracker()
    assert tracker.add("t", 0, 5) is None
    tracker.assign("t", 1)
    assert tracker.add("t", 1, 5) is not None
    tracker.drop("t", 1)
    assert tracker.add("t", 1, 6) is None  # fetched before the revoke, handled after it
    assert tracker.committable() == []
    assert tracker.pending_total() == 0


def test_tracker_lists_only_changed_partitions() -> None:
    """committable() lists partitions whose commit changed since the broker confirmed one,
    sorted, with the finished offsets above in the metadata."""
    tracker = OffsetTracker()
    assert tracker.committable() == []
    for key in (("b", 0), ("a", 1), ("a", 0)):
        tracker.assign(*key)
    epochs = {}
    for offset in range(3):
        epochs["b", 0] = tracker.add("b", 0, offset)
        epochs["a", 1] = tracker.add("a", 1, offset)
    epoch_a0 = tracker.add("a", 0, 40)
    assert epoch_a0 is not None
    assert tracker.committable() == [
        Commit("a", 0, 40, ""),
        Commit("a", 1, 0, ""),
        Commit("b", 0, 0, ""),
    ]
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == []

    epoch = epochs["a", 1]
    assert epoch is not None
    tracker.done("a", 1, 1, epoch)  # out of order: a/1 stays at 0, but 1 is finished
    assert tracker.committable() == [Commit("a", 1, 0, offset_metadata.encode(0, [(1, 2)]))]
    tracker.done("a", 1, 0, epoch)
    assert tracker.committable() == [Commit("a", 1, 2, "")]
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == []
    assert tracker.pending_total() == 1 + 1 + 3


def test_tracker_relists_until_the_broker_confirms() -> None:
    """Until mark_committed, the same commit keeps being listed: a failed or unconfirmed
    commit is retried. A confirmation for a partition dropped meanwhile is ignored."""
    tracker = OffsetTracker()
    tracker.assign("t", 0)
    epoch = tracker.add("t", 0, 0)
    assert epoch is not None
    tracker.done("t", 0, 0, epoch)
    assert tracker.committable() == [Commit("t", 0, 1, "")]
    assert tracker.committable() == [Commit("t", 0, 1, "")]
    sent = tracker.committable()
    tracker.drop("t", 0)
    tracker.mark_committed(sent)
    tracker.assign("t", 0)
    assert tracker.add("t", 0, 0) is not None
    assert tracker.committable() == [Commit("t", 0, 0, "")]


def test_late_completion_of_a_revoked_assignment_is_ignored() -> None:
    """A partition revoked with a record in flight and assigned again is tracked afresh; the
    old record's late done() neither raises nor completes the new assignment's copy."""
    tracker = OffsetTracker()
    tracker.assign("t", 0, 10)
    old = tracker.add("t", 0, 10)
    assert old is not None
    tracker.drop("t", 0)
    tracker.done("t", 0, 10, old)  # finishes while nobody holds the partition: ignored
    tracker.assign("t", 0, 10)
    new = tracker.add("t", 0, 10)
    assert new is not None
    assert new != old
    tracker.done("t", 0, 10, old)  # or while the new assignment handles it again
    assert tracker.committable() == []  # still 10, as the group committed it
    assert tracker.pending_total() == 1
    tracker.done("t", 0, 10, new)
    assert tracker.committable() == [Commit("t", 0, 11, "")]


def test_a_rewound_partition_is_tracked_afresh() -> None:
    """A step back within an assignment (the consumer was rewound) starts a new epoch from
    the lower offset without an error; completions of the old epoch are ignored."""
    tracker = OffsetTracker()
    tracker.assign("t", 0)
    old = tracker.add("t", 0, 100)
    assert old is not None
    new = tracker.add("t", 0, 95)
    assert new is not None
    assert new != old
    tracker.done("t", 0, 100, old)
    assert tracker.committable() == [Commit("t", 0, 95, "")]
    tracker.done("t", 0, 95, new)
    assert tracker.committable() == [Commit("t", 0, 96, "")]


def test_committed_metadata_carries_finished_offsets_to_the_next_owner() -> None:
    """One slow record holds the offset back while those behind it finish; the next owner,
    assigned from that commit, handles again only what was in flight (and what it fetches
    beyond), and its first commit is the one it was assigned from."""
    first = OffsetTracker()
    first.assign("t", 0, 0)
    epochs = {offset: first.add("t", 0, offset) for offset in range(100)}
    for offset in range(100):
        if offset not in (0, 50, 51):  # slow, or still in flight at the crash
            epoch = epochs[offset]
            assert epoch is not None
            first.done("t", 0, offset, epoch)
    (commit,) = first.committable()
    assert (commit.offset, offset_metadata.decode(0, commit.metadata)) == (0, [(1, 50), (52, 100)])

    second = OffsetTracker()
    second.assign("t", 0, commit.offset, commit.metadata)
    assert second.committable() == []
    handled = [offset for offset in range(120) if second.add("t", 0, offset) is not None]
    assert handled == [0, 50, 51, *range(100, 120)]
    assert second.committable() == []  # nothing finished yet: the broker already has this
    epoch = second.add("t", 0, 120)
    assert epoch is not None
    second.done("t", 0, 120, epoch)
    (moved,) = second.committable()
    assert offset_metadata.decode(0, moved.metadata) == [(1, 50), (52, 100), (120, 121)]


def test_metadata_budget_keeps_a_prefix() -> None:
    """With a small metadata budget the commit records a prefix of the finished ranges (the
    rest are redelivered after a crash), never more than the budget."""
    tracker = OffsetTracker()
    tracker.assign("t", 0)
    epochs = {offset: tracker.add("t", 0, offset) for offset in range(2000)}
    for offset in range(1, 2000, 2):  # every other one finished: the worst case
        epoch = epochs[offset]
        assert epoch is not None
        tracker.done("t", 0, offset, epoch)
    (commit,) = tracker.committable(max_metadata=64)
    assert len(commit.metadata) <= 64
    ranges = offset_metadata.decode(0, commit.metadata)
    assert ranges
    assert ranges == [(o, o + 1) for o in range(1, 2 * len(ranges), 2)]


def test_tracker_passes_partition_misuse_through() -> None:
    """Completing an offset that is not in flight on a tracked partition still raises."""
    tracker = OffsetTracker()
    tracker.assign("t", 0)
    epoch = tracker.add("t", 0, 0)
    assert epoch is not None
    with pytest.raises(ValueError, match="not in flight"):
        tracker.done("t", 0, 1, epoch)


@pytest.mark.parametrize("seed", range(10))
def test_random_runs_with_offsets_finished_before_match_a_simple_model(seed: int) -> None:
    """With random finished ranges from a previous owner, random gaps and a random completion
    order: only offsets outside those ranges are handled, the committable offset is the
    lowest offset not known finished, and the finished ranges listed are exactly the known
    finished offsets above it (seen and done, gaps, or finished before)."""
    rng = random.Random(seed)
    before: set[int] = set(rng.sample(range(1, 400), 150))
    finished_before = ranges_of(before)
    offsets = PartitionOffsets(finished_before)
    in_flight: set[int] = set()
    last = -1
    for offset in sorted(rng.sample(range(400), 300)):
        assert offsets.add(offset) is (offset not in before)
        last = offset
        if offset not in before:
            in_flight.add(offset)
        while in_flight and rng.random() < 0.5:
            finished = rng.choice(sorted(in_flight))
            offsets.done(finished)
            in_flight.remove(finished)
        unfinished = in_flight | {o for o in range(last + 1, 401) if o not in before}
        expected = min(unfinished)
        assert offsets.committable() == expected
        above = {o for o in range(expected + 1, 401) if o not in unfinished}
        assert list(offsets.finished_above()) == ranges_of(above)
        encoded = offset_metadata.encode(expected, offsets.finished_above())
        assert offset_metadata.decode(expected, encoded) == ranges_of(above)
