"""A tier's resume timer: never before the head record is due, rounded up to the tier's grain
so records due close together are attempted after one pause/resume cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.retry_tiers import TierWorker, resume_after
from producer.config import Settings

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GRAIN = timedelta(milliseconds=500)


@pytest.mark.parametrize(
    ("due_in_ms", "expected"),
    [(1, 0.5), (499, 0.5), (500, 0.5), (501, 1.0), (1_700, 2.0), (0, 0.0), (-3_000, 0.0)],
)
def test_the_wait_is_never_shorter_than_the_due_time_and_a_whole_number_of_grains(
    due_in_ms: int, expected: float
) -> None:
    due = NOW + timedelta(milliseconds=due_in_ms)
    wait = resume_after(due, NOW, GRAIN)
    assert wait == pytest.approx(expected)
    assert NOW + timedelta(seconds=wait) >= due, "a retry is never early"
    assert wait - max(0, due_in_ms) / 1000 < GRAIN.total_seconds(), "at most a grain late"


def test_without_a_grain_the_wait_is_the_exact_time_to_due() -> None:
    assert resume_after(NOW + timedelta(seconds=1.25), NOW, timedelta(0)) == 1.25


@pytest.mark.parametrize(("delay_s", "grain_ms"), [(1, 100), (5, 500), (30, 1_000), (3_600, 1_000)])
def test_a_tiers_grain_is_a_tenth_of_its_delay_and_at_most_a_second(
    delay_s: int, grain_ms: int
) -> None:
    tier = TierWorker(
        Settings(),
        engine=None,
        delay=timedelta(seconds=delay_s),  # type: ignore[arg-type]
        runtime_of=lambda _id: None,
        is_deleted=lambda _id: False,
    )
    assert tier.grain == timedelta(milliseconds=grain_ms)
