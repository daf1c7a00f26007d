"""Delivery stats: attempts counted in time buckets.

An attempt with status ``success`` counts as successful; one with status ``retrying`` or
``failed`` counts as failed, because each is a delivery the endpoint did not accept, whether
or not a later attempt succeeds (Auth0 counts failed deliveries the same way). Buckets are
aligned to multiples of their size since the Unix epoch, so the same bucket always has the
same start, and every bucket of the window is listed, empty ones included.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from dispatcher.delivery_log import AttemptRecord

#: Bucket sizes picked by default: the smallest that keeps the window within
#: :data:`DEFAULT_MAX_BUCKETS` buckets.
DEFAULT_BUCKETS: Final = tuple(timedelta(seconds=s) for s in (60, 300, 900, 3600, 6 * 3600, 86400))
DEFAULT_MAX_BUCKETS: Final = 300
#: The most buckets one answer may hold, and the bounds of an explicit bucket size.
MAX_BUCKETS: Final = 2000
MIN_BUCKET: Final = timedelta(seconds=1)
MAX_BUCKET: Final = timedelta(days=1)
#: The window when no start is given.
DEFAULT_WINDOW: Final = timedelta(hours=24)


def default_bucket(window: timedelta) -> timedelta:
    """The bucket size for a window when none is asked for."""
    for size in DEFAULT_BUCKETS:
        if window / size <= DEFAULT_MAX_BUCKETS:
            return size
    return DEFAULT_BUCKETS[-1]


def bucket_start(at: datetime, size: timedelta) -> datetime:
    """The start of the bucket holding ``at``."""
    micros = round(at.timestamp() * 1_000_000)
    step = round(size.total_seconds() * 1_000_000)
    return datetime.fromtimestamp((micros - micros % step) / 1_000_000, UTC)


def count(
    attempts: Iterable[AttemptRecord], start: datetime, end: datetime, size: timedelta
) -> list[tuple[datetime, int, int]]:
    """``(bucket start, successful, failed)`` for each bucket covering ``[start, end)``;
    attempts outside the window are ignored."""
    first = bucket_start(start, size)
    buckets: dict[datetime, list[int]] = {}
    cursor = first
    while cursor < end:
        buckets[cursor] = [0, 0]
        cursor += size
    for record in attempts:
        if not start <= record.at < end:
            continue
        slot = buckets[bucket_start(record.at, size)]
        slot[0 if record.status == "success" else 1] += 1
    return [(when, ok, failed) for when, (ok, failed) in buckets.items()]


def bucket_count(start: datetime, end: datetime, size: timedelta) -> int:
    """How many buckets :func:`count` would return."""
    first = bucket_start(start, size)
    return max(0, -(-(end - first) // size))
