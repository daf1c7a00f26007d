"""SubjectLines: each subject's events in order, and the parked counts."""

from __future__ import annotations

import asyncio

from dispatcher.engine import End
from dispatcher.jobs import Job
from dispatcher.subject_order import SubjectLines

A = (0, b"auth0|a")
B = (1, b"auth0|b")


def job(n: int) -> Job:
    return Job(
        stream_id="est_x", event_id=f"evt_{n}", event_type="user.updated", value=b"", key=b"k"
    )


async def idle() -> End:
    await asyncio.sleep(3600)
    return End.DELIVERED


async def test_a_free_subject_has_no_event_ahead_and_a_busy_one_names_its_latest() -> None:
    """Events join their subject's line in order; ``last`` is the latest one's task."""
    lines = SubjectLines()
    first, second = asyncio.create_task(idle()), asyncio.create_task(idle())
    assert lines.last(A) is None
    assert lines.join(A, job(1), first) is False
    assert lines.last(A) is first
    assert lines.join(A, job(2), second) is False, "behind an event in flight: not parked"
    assert lines.last(A) is second
    assert lines.last(B) is None
    lines.ended(A, first)
    assert lines.last(A) is second
    lines.ended(A, second)
    assert lines.last(A) is None
    assert len(lines) == 0
    for task in (first, second):
        task.cancel()


async def test_a_blocked_subject_parks_its_later_events_until_its_first_ends() -> None:
    """block() parks what waits behind the first event (once), later arrivals are parked too,
    and the first one's end unblocks the line and clears the counts."""
    lines = SubjectLines()
    tasks = [asyncio.create_task(idle()) for _ in range(4)]
    lines.join(A, job(0), tasks[0])
    lines.join(A, job(1), tasks[1])
    lines.join(B, job(9), tasks[3])
    assert [j.event_id for j in lines.block(A)] == ["evt_1"]
    assert lines.block(A) == [], "a second failure parks nothing new"
    assert lines.join(A, job(2), tasks[2]) is True
    assert (lines.parked_subjects, lines.parked_events) == (1, 2)
    lines.ended(A, tasks[0])
    assert (lines.parked_subjects, lines.parked_events) == (0, 0)
    assert lines.last(A) is tasks[2]
    for task in tasks:
        task.cancel()


async def test_dropping_a_partition_returns_its_tasks_and_forgets_its_parked_counts() -> None:
    """A lost partition's lines go, with every task in them (to be cancelled); the others stay."""
    lines = SubjectLines()
    tasks = [asyncio.create_task(idle()) for _ in range(3)]
    lines.join(A, job(0), tasks[0])
    lines.join(A, job(1), tasks[1])
    lines.join(B, job(2), tasks[2])
    lines.block(A)
    assert lines.drop([0]) == tasks[:2]
    assert (lines.parked_subjects, lines.parked_events) == (0, 0)
    assert lines.last(A) is None
    assert lines.last(B) is tasks[2]
    lines.ended(A, tasks[0])  # a late end of a dropped line changes nothing
    assert len(lines) == 1
    for task in tasks:
        task.cancel()
