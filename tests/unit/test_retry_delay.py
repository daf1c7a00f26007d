"""Tests for dispatcher.retry_delay: tier selection, Retry-After choosing a tier, exhaustion."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatcher.outcome import Outcome, OutcomeKind
from dispatcher.retry_delay import RetryPlan, next_delay, total_retry_span

S = timedelta(seconds=1)
SCHEDULE = [5 * S, 300 * S, 1800 * S]


def failed(retry_after: float | None = None) -> Outcome:
    """A retryable outcome, optionally with the receiver's Retry-After in seconds."""
    return Outcome(OutcomeKind.RETRYABLE, 503, "HTTP 503", retry_after)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (1, RetryPlan(0, 5 * S)),
        (2, RetryPlan(1, 300 * S)),
        (3, RetryPlan(2, 1800 * S)),
        (4, None),
        (10, None),
    ],
)
def test_attempt_selects_tier(attempt: int, expected: RetryPlan | None) -> None:
    """Attempt n goes to tier n-1 with that tier's delay; past the last tier there is none."""
    assert next_delay(SCHEDULE, attempt, failed()) == expected


@pytest.mark.parametrize(
    ("attempt", "retry_after", "tier"),
    [
        (1, 1.0, 0),  # shorter than the tier: the tier the schedule is at
        (1, 0.0, 0),
        (1, 5.0, 0),
        (1, 299.9, 0),  # not yet the next tier's delay
        (1, 300.0, 1),  # reaches the next tier
        (1, 1799.0, 1),
        (1, 1800.0, 2),
        (1, 86400.0, 2),  # beyond the schedule: its longest tier, no further
        (1, 1e14, 2),  # more seconds than a timedelta holds
        (1, float("inf"), 2),
        (2, 450.0, 1),
        (2, 3600.0, 2),
        (3, 60.0, 2),  # never back to an earlier tier
    ],
)
def test_retry_after_chooses_a_tier_and_waits_exactly_its_delay(
    attempt: int, retry_after: float, tier: int
) -> None:
    """Retry-After picks the longest tier (from the schedule's current one) not beyond what
    the receiver asked; the wait is that tier's own delay, so each tier stays in due order."""
    assert next_delay(SCHEDULE, attempt, failed(retry_after)) == RetryPlan(tier, SCHEDULE[tier])


def test_retry_after_does_not_revive_an_exhausted_schedule() -> None:
    """A receiver's Retry-After cannot add a retry after the last tier."""
    assert next_delay(SCHEDULE, 4, failed(1.0)) is None


def test_empty_schedule_never_retries() -> None:
    """With no tiers, the first failure is already the last."""
    assert next_delay([], 1, failed()) is None


def test_zero_delay_tier() -> None:
    """A zero-delay tier waits zero, whatever Retry-After says (there is no later tier)."""
    assert next_delay([timedelta(0)], 1, failed(30.0)) == RetryPlan(0, timedelta(0))


@pytest.mark.parametrize(
    "kind",
    [OutcomeKind.SUCCESS, OutcomeKind.PERMANENT, OutcomeKind.GONE],
)
def test_non_retryable_outcome_is_refused(kind: OutcomeKind) -> None:
    """Asking for a retry delay for anything but a retryable outcome is a caller bug."""
    with pytest.raises(ValueError, match="only retryable outcomes"):
        next_delay(SCHEDULE, 1, Outcome(kind, 400, None, None))


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_starts_at_one(attempt: int) -> None:
    """Attempts are counted from 1 (after the first failure)."""
    with pytest.raises(ValueError, match="starts at 1"):
        next_delay(SCHEDULE, attempt, failed())


def test_negative_tier_delay_is_refused() -> None:
    """A negative tier delay is a configuration bug and raises."""
    with pytest.raises(ValueError, match="negative delay"):
        next_delay([-S], 1, failed())


@pytest.mark.parametrize(
    ("schedule", "span"),
    [
        ([], timedelta(0)),
        ([5 * S], 5 * S),
        (SCHEDULE, 2105 * S),
        (
            [
                timedelta(seconds=5),
                timedelta(minutes=5),
                timedelta(minutes=30),
                timedelta(hours=2),
                timedelta(hours=5),
                timedelta(hours=10),
                timedelta(hours=10),
            ],
            timedelta(hours=27, minutes=35, seconds=5),
        ),
    ],
)
def test_total_retry_span(schedule: list[timedelta], span: timedelta) -> None:
    """The total span is the sum of the tier delays."""
    assert total_retry_span(schedule) == span
