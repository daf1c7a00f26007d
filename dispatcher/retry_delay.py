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
    #: That tier's own, fixed delay.
    delay: timedelta
    #: How long to actually wait before the next attempt, counted from now: the tier delay,
    #: or a longer wait the receiver asked for with ``Retry-After`` (at most twice the tier).
    not_before: timedelta


def next_delay(schedule: Sequence[timedelta], attempt: int, outcome: Outcome) -> RetryPlan | None:
    """Plan the next retry of a record, or return None when the schedule is exhausted.

    ``attempt`` is the number of attempts already made (1 after the first failure), so it
    selects tier ``attempt - 1``; once it exceeds ``len(schedule)`` there is no tier left.
    ``outcome`` must be retryable: a permanent or gone outcome never reaches a retry tier, and
    asking for a delay for one is a bug in the caller, so it raises ``ValueError``.

    ``Retry-After`` is clamped to ``[tier delay, 2 x tier delay]``. It cannot shorten the
    wait, because a tier is a topic with one fixed delay whose consumer holds records until
    that delay has passed; records in it are never delivered early. It may lengthen the wait
    (the record carries its own due time, and the tier consumer holds it until then), but only
    up to twice the tier delay, so a receiver answering ``Retry-After: 86400`` cannot park a
    record far beyond the schedule the stream was promised; later tiers give it more time.
    """
    if outcome.kind is not OutcomeKind.RETRYABLE:
        raise ValueError(f"only retryable outcomes are retried, not {outcome.kind.value!r}")
    if attempt < 1:
        raise ValueError(f"attempt counts attempts already made and starts at 1, got {attempt}")
    if attempt > len(schedule):
        return None
    tier_index = attempt - 1
    delay = schedule[tier_index]
    if delay < timedelta(0):
        raise ValueError(f"retry tier {tier_index} has a negative delay: {delay}")
    not_before = delay
    if outcome.retry_after is not None:
        asked = timedelta(seconds=outcome.retry_after)
        not_before = min(max(asked, delay), 2 * delay)
    return RetryPlan(tier_index=tier_index, delay=delay, not_before=not_before)


def total_retry_span(schedule: Sequence[timedelta]) -> timedelta:
    """Return the time from the first failure to the last retry when no tier is stretched.

    This is the sum of the tier delays (delivery time itself not counted). ``Retry-After`` can
    stretch each tier to at most twice its delay, so the longest possible span is twice this.
    """
    return sum(schedule, timedelta(0))
