"""Tests for schemas.timestamps: UTC millisecond timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from schemas.timestamps import format_rfc3339_millis, to_utc_millis, utc_now


def test_format_has_milliseconds_and_z() -> None:
    """Times render as RFC 3339 with exactly three fraction digits and 'Z'."""
    when = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
    assert format_rfc3339_millis(when) == "2026-11-26T12:00:00.123Z"
    assert format_rfc3339_millis(when.replace(microsecond=0)) == "2026-11-26T12:00:00.000Z"


def test_other_offsets_are_converted_to_utc() -> None:
    """A time in another zone is rendered as the same instant in UTC."""
    paris = timezone(timedelta(hours=1))
    when = datetime(2026, 11, 26, 13, 0, 0, 5000, tzinfo=paris)
    assert format_rfc3339_millis(when) == "2026-11-26T12:00:00.005Z"
    assert to_utc_millis(when) == datetime(2026, 11, 26, 12, 0, 0, 5000, tzinfo=UTC)
    assert to_utc_millis(when).tzinfo is UTC


def test_truncation_drops_sub_millisecond_digits() -> None:
    """Microseconds below the millisecond are dropped, never rounded up."""
    when = datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    assert to_utc_millis(when).microsecond == 999000


def test_now_is_utc_and_whole_milliseconds() -> None:
    """utc_now() is aware, in UTC, and has no sub-millisecond part."""
    now = utc_now()
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0
