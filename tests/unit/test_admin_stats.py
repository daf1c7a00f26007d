"""Stats buckets of the admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin.api.stats import bucket_count, bucket_start, counter_spans, default_bucket, tally

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_success_counts_as_successful_and_retrying_or_failed_as_failed() -> None:
    """Every failed attempt counts, whether it was retried or dead-lettered."""
    t0 = int(T0.timestamp())
    counters = [(t0 + 5, 1, 1, 0), (t0 + 70, 1, 0, 1)]
    rows = tally(counters, T0, T0 + timedelta(minutes=3), timedelta(minutes=1))
    assert rows == [
        (T0, 1, 1),
        (T0 + timedelta(minutes=1), 1, 1),
        (T0 + timedelta(minutes=2), 0, 0),
    ]


def test_buckets_are_aligned_to_the_epoch() -> None:
    """A window starting mid-bucket starts at that bucket."""
    start = T0 + timedelta(seconds=30)
    rows = tally([(int(start.timestamp()), 1, 0, 0)], start, T0 + timedelta(minutes=1), MINUTE)
    assert rows == [(T0, 1, 0)]
    assert bucket_start(T0 + timedelta(seconds=59, microseconds=999), MINUTE) == T0


def test_whole_minutes_come_from_minute_counters_and_the_edges_from_seconds() -> None:
    """Minute counters serve minute-multiple buckets; edges and smaller buckets use seconds,
    the window widened to whole seconds."""
    t0 = int(T0.timestamp())
    start = T0 + timedelta(seconds=30.5)
    end = T0 + timedelta(minutes=3, seconds=10.2)
    assert counter_spans(start, end, MINUTE) == [
        (t0 + 30, t0 + 60, False),
        (t0 + 60, t0 + 180, True),
        (t0 + 180, t0 + 191, False),
    ]
    assert counter_spans(start, end, timedelta(seconds=30)) == [(t0 + 30, t0 + 191, False)]
    assert counter_spans(start, start + timedelta(seconds=5), MINUTE) == [(t0 + 30, t0 + 36, False)]


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
    """The guard against huge answers counts exactly the buckets tally() lists."""
    start, end = T0 + timedelta(seconds=7), T0 + timedelta(minutes=5, seconds=1)
    size = timedelta(minutes=1)
    assert bucket_count(start, end, size) == len(tally([], start, end, size)) == 6
