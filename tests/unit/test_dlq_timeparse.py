"""Tests for admin.timeparse: times typed on the command line (``--from``, ``--to``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from admin.timeparse import parse_time

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-2h", NOW - timedelta(hours=2)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-7d", NOW - timedelta(days=7)),
        ("-1w", NOW - timedelta(weeks=1)),
        ("-90", NOW - timedelta(seconds=90)),
        ("-500ms", NOW - timedelta(milliseconds=500)),
        ("-0s", NOW),
        (" -2h ", NOW - timedelta(hours=2)),
        ("now", NOW),
        ("NOW", NOW),
        ("2026-04-30T08:15:00Z", datetime(2026, 4, 30, 8, 15, tzinfo=UTC)),
        ("2026-04-30T08:15:00.250Z", datetime(2026, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2026-04-30T10:15:00+02:00", datetime(2026, 4, 30, 8, 15, tzinfo=UTC)),
        ("2026-04-30 08:15", datetime(2026, 4, 30, 8, 15, tzinfo=UTC)),
        ("2026-04-30", datetime(2026, 4, 30, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_iso_now_and_relative(text: str, expected: datetime) -> None:
    """ISO 8601 (offset or not), ``now`` and ``-<duration>`` all parse to that instant."""
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["2026-04-30T10:15:00+02:00", "2026-04-30", "-2h", "now"])
def test_parse_time_always_answers_aware_utc(text: str) -> None:
    """Every result is timezone-aware and in UTC, so comparisons never mix zones."""
    assert parse_time(text, NOW).tzinfo is UTC


def test_naive_iso_times_are_utc_not_local() -> None:
    """A time without an offset means UTC, whatever the machine's zone."""
    assert parse_time("2026-04-30T08:15:00", NOW) == datetime(2026, 4, 30, 8, 15, tzinfo=UTC)


def test_relative_times_count_back_from_an_aware_now_in_any_zone() -> None:
    """``now`` in another zone is the same instant: -1h is one hour before it, in UTC."""
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert parse_time("-1h", plus_two) == NOW - timedelta(hours=1)


def test_without_now_relative_times_use_the_clock() -> None:
    """Leaving ``now`` out anchors relative times at the current time."""
    before = datetime.now(UTC)
    parsed = parse_time("-1h")
    after = datetime.now(UTC)
    assert before - timedelta(hours=1) <= parsed <= after - timedelta(hours=1)


@pytest.mark.parametrize("text", ["", "yesterday", "2h", "-2x", "--2h", "2026-13-01", "-"])
def test_parse_time_rejects_other_text_with_a_hint(text: str) -> None:
    """Anything else is a ValueError that quotes the input and shows the accepted forms."""
    with pytest.raises(ValueError, match="is not a time: use ISO 8601") as raised:
        parse_time(text, NOW)
    assert repr(text) in str(raised.value)
