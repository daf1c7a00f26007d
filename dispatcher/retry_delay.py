"""The retry delay: which retry tier a failed record goes to next, and how long it waits there.

Retries run through a fixed schedule of tiers, each a Kafka topic whose consumer holds every
record until its tier delay has passed (``tidings.retry.<n>``). This module is the pure
decision behind that: given the schedule, how many attempts were made and the classified
outcome of the last one, it names the tier and the earliest time to try again, or says the
schedule is exhausted and the record belongs in the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from dispatcher.outcome import Outcome, OutcomeKind


@dataclass(frozen=True)
class RetryPlan:
    """Where and how long a failed record waits before its next attempt."""

    #: Index into the schedule: the retry tier (topic) the record is handed to.
    tier_index: int
    #: That tier's own, fixed delay: exactly how long the record waits, counted from now.
    delay: timedelta


def next_delay(schedule: Sequence[timedelta], attempt: int, outcome: Outcome) -> RetryPlan | None:
    """Plan the next retry of a record, or return None when the schedule is exhausted.

    ``attempt`` is the number of attempts already made (1 after the first failure), so it
    selects tier ``attempt - 1``; once it exceeds ``len(schedule)`` there is no tier left.
    ``outcome`` must be retryable: a permanent or gone outcome never reaches a retry tier, and
    asking for a delay for one is a bug in the caller, so it raises ``ValueError``.

    ``Retry-After`` chooses the tier, never the wait within one: the record goes to the
    longest tier, from the one the schedule is at onwards, whose delay does not exceed what
    the receiver asked, and waits exactly that tier's delay. Every record of a tier partition
    therefore waits the same delay after it was written, so the partition stays in due order
    and no stretched record holds up another stream's earlier-due one. A receiver can never
    shorten a wait (a tier delivers nothing early) nor park a record longer than the
    schedule's longest tier, whatever it sends (``Retry-After: 100000000000000`` included).
    The attempt count goes on by one, so the number of retries is the schedule's.
    """
    if outcome.kind is not OutcomeKind.RETRYABLE:
        raise ValueError(f"only retryable outcomes are retried, not {outcome.kind.value!r}")
    if attempt < 1:
        raise ValueError(f"attempt counts attempts already made and starts at 1, got {attempt}")
    if attempt > len(schedule):
        return None
    tier_index = attempt - 1
    if schedule[tier_index] < timedelta(0):
        raise ValueError(f"retry tier {tier_index} has a negative delay: {schedule[tier_index]}")
    asked = outcome.retry_after
    if asked is not None:
        # Compared as seconds: a huge value cannot be a timedelta (it overflows).
        while tier_index + 1 < len(schedule) and schedule[tier_index + 1].total_seconds() <= asked:
            tier_index += 1
    return RetryPlan(tier_index=tier_index, delay=schedule[tier_index])


def total_retry_span(schedule: Sequence[timedelta]) -> timedelta:
    """Return the time from the first failure to the last retry when no tier is skipped to.

    This is the sum of the tier delays (delivery time itself not counted). ``Retry-After`` can
    send a record to a later tier, so one retry may wait up to the longest tier's delay.
    """
    return sum(schedule, timedelta(0))
