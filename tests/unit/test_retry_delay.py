"""Tests for dispatcher.retry_delay: tier selection, Retry-After clamping and exhaustion."""

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
        (1, RetryPlan(0, 5 * S, 5 * S)),
        (2, RetryPlan(1, 300 * S, 300 * S)),
        (3, RetryPlan(2, 1800 * S, 1800 * S)),
        (4, None),
        (10, None),
    ],
)
def test_attempt_selects_tier(attempt: int, expected: RetryPlan | None) -> None:
    """Attempt n goes to tier n-1 with that tier's delay; past the last tier there is none."""
    assert next_delay(SCHEDULE, attempt, failed()) == expected


@pytest.mark.parametrize(
    ("attempt", "retry_after", "not_before"),
    [
        (1, 1.0, 5 * S),  # shorter than the tier: the tier delay still applies
        (1, 0.0, 5 * S),
        (1, 5.0, 5 * S),
        (1, 7.0, 7 * S),  # within [tier, 2 x tier]: honoured
        (1, 7.5, timedelta(seconds=7.5)),
        (1, 10.0, 10 * S),
        (1, 11.0, 10 * S),  # beyond 2 x tier: clamped
        (1, 86400.0, 10 * S),
        (2, 450.0, 450 * S),
        (2, 3600.0, 600 * S),
        (3, 60.0, 1800 * S),
    ],
)
def test_retry_after_is_clamped_to_one_to_two_tiers(
    attempt: int, retry_after: float, not_before: timedelta
) -> None:
    """Retry-After never shortens the tier delay and stretches it to at most twice."""
    plan = next_delay(SCHEDULE, attempt, failed(retry_after))
    assert plan is not None
    assert plan.delay == SCHEDULE[attempt - 1]
    assert plan.not_before == not_before


def test_retry_after_does_not_revive_an_exhausted_schedule() -> None:
    """A receiver's Retry-After cannot add a retry after the last tier."""
    assert next_delay(SCHEDULE, 4, failed(1.0)) is None


def test_empty_schedule_never_retries() -> None:
    """With no tiers, the first failure is already the last."""
    assert next_delay([], 1, failed()) is None


def test_zero_delay_tier() -> None:
    """A zero-delay tier waits zero, whatever Retry-After says (2 x 0 is 0)."""
    assert next_delay([timedelta(0)], 1, failed(30.0)) == RetryPlan(0, timedelta(0), timedelta(0))


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
