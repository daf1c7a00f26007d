"""Stats buckets of the admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin.api.stats import bucket_count, bucket_start, count, default_bucket
from dispatcher.delivery_log import AttemptRecord, AttemptStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def attempt(at: datetime, status: AttemptStatus) -> AttemptRecord:
    return AttemptRecord(
        stream_id="est_x",
        event_id="evt_x",
        event_type="user.created",
        attempt=1,
        status=status,
        duration_ms=1.0,
        at=at,
    )


def test_success_counts_as_successful_and_retrying_or_failed_as_failed() -> None:
    """Every failed attempt counts, whether it was retried or dead-lettered."""
    attempts = [
        attempt(T0 + timedelta(seconds=5), "success"),
        attempt(T0 + timedelta(seconds=10), "retrying"),
        attempt(T0 + timedelta(seconds=70), "failed"),
        attempt(T0 + timedelta(seconds=80), "success"),
    ]
    rows = count(attempts, T0, T0 + timedelta(minutes=3), timedelta(minutes=1))
    assert rows == [
        (T0, 1, 1),
        (T0 + timedelta(minutes=1), 1, 1),
        (T0 + timedelta(minutes=2), 0, 0),
    ]


def test_buckets_are_aligned_to_the_epoch_and_ignore_attempts_outside_the_window() -> None:
    """A window starting mid-bucket starts at that bucket; the window bounds still apply."""
    start = T0 + timedelta(seconds=30)
    attempts = [attempt(T0 + timedelta(seconds=10), "success"), attempt(start, "success")]
    rows = count(attempts, start, T0 + timedelta(minutes=1), timedelta(minutes=1))
    assert rows == [(T0, 1, 0)]
    assert bucket_start(T0 + timedelta(seconds=59, microseconds=999), timedelta(minutes=1)) == T0


@pytest.mark.parametrize(
    ("window", "bucket"),
    [
        (timedelta(minutes=10), timedelta(minutes=1)),
        (timedelta(hours=5), timedelta(minutes=1)),
        (timedelta(hours=24), timedelta(minutes=5)),
        (timedelta(days=7), timedelta(hours=1)),
        (timedelta(days=365), timedelta(days=1)),
    ],
)
def test_the_default_bucket_keeps_the_window_readable(window: timedelta, bucket: timedelta) -> None:
    """The default is the smallest size giving at most 300 buckets."""
    assert default_bucket(window) == bucket


def test_bucket_count_matches_count() -> None:
    """The guard against huge answers counts exactly the buckets count() lists."""
    start, end = T0 + timedelta(seconds=7), T0 + timedelta(minutes=5, seconds=1)
    size = timedelta(minutes=1)
    assert bucket_count(start, end, size) == len(count([], start, end, size)) == 6
