"""Delivery stats: attempts counted in time buckets, from the history store's per-minute
and per-second counters (so a week costs ~10,000 counters, not its attempts).

An attempt with status ``success`` counts as successful; one with status ``retrying`` or
``failed`` counts as failed, because each is a delivery the endpoint did not accept, whether
or not a later attempt succeeds (Auth0 counts failed deliveries the same way). Buckets are
aligned to multiples of their size since the Unix epoch, so the same bucket always has the
same start, and every bucket of the window is listed, empty ones included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

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


#: ``(second, successful, retrying, failed)``: the stored counters of one second or minute.
Counter = tuple[int, int, int, int]


def counter_spans(start: datetime, end: datetime, size: timedelta) -> list[tuple[int, int, bool]]:
    """Which stored counters cover ``[start, end)``: ``(from, to, per_minute)`` spans of
    seconds since the epoch. Whole minutes come from the per-minute counters when the
    bucket size is a whole number of minutes (a minute then lies in one bucket), the edges
    and smaller buckets from the per-second ones. Attempts count to the second: the window
    is widened to whole seconds."""
    first, last = math.floor(start.timestamp()), math.ceil(end.timestamp())
    minute_from, minute_to = -(-first // 60) * 60, last // 60 * 60
    if round(size.total_seconds()) % 60 or minute_from >= minute_to:
        return [(first, last, False)]
    spans = [(first, minute_from, False), (minute_from, minute_to, True), (minute_to, last, False)]
    return [span for span in spans if span[0] < span[1]]


def tally(
    counters: Iterable[Counter], start: datetime, end: datetime, size: timedelta
) -> list[tuple[datetime, int, int]]:
    """``(bucket start, successful, failed)`` for each bucket covering ``[start, end)``,
    from counters read for :func:`counter_spans`; a retried or dead-lettered attempt both
    count as failed."""
    step = round(size.total_seconds())
    first = round(bucket_start(start, size).timestamp())
    buckets: dict[int, list[int]] = {}
    cursor = first
    end_second = end.timestamp()
    while cursor < end_second:
        buckets[cursor] = [0, 0]
        cursor += step
    for second, ok, retrying, failed in counters:
        slot = buckets.get(second - second % step)
        if slot is not None:
            slot[0] += ok
            slot[1] += retrying + failed
    return [
        (datetime.fromtimestamp(when, UTC), ok, failed) for when, (ok, failed) in buckets.items()
    ]


def bucket_count(start: datetime, end: datetime, size: timedelta) -> int:
    """How many buckets :func:`tally` returns."""
    first = bucket_start(start, size)
    return max(0, -(-(end - first) // size))
