"""Tests for schemas.record_headers: every header is hostile until parsed, and reading one
never raises."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.record_headers import MAX_MS, RecordHeaders, header_map, ms


def test_header_map_takes_lists_dicts_none_and_str_values() -> None:
    """The last value of a repeated name wins; None becomes empty, str is encoded."""
    assert header_map([("a", b"1"), ("a", b"2"), ("b", None), ("c", "é")]) == {
        "a": b"2",
        "b": b"",
        "c": "é".encode(),
    }
    assert header_map(None) == {}
    assert header_map({"x": b"y"}) == {"x": b"y"}


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (None, ""),
        (b"", ""),
        (b"plain", "plain"),
        ("é".encode()[:1], "\ufffd"),  # UTF-8 cut inside a character
        (b"\xff\xfe", "\ufffd\ufffd"),  # not UTF-8 at all
    ],
)
def test_text_replaces_what_is_not_utf8(raw: bytes | None, text: str) -> None:
    """Undecodable bytes are replaced, an absent or empty value is the default."""
    headers = RecordHeaders([] if raw is None else [("h", raw)])
    assert headers.text("h") == text
    assert headers.optional_text("h") == (text or None)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"42", 42),
        (b" 7 ", 7),
        (b"-3", -3),
        (b"", None),
        (b"4x", None),
        (b"1.5", None),
        (b"\xff", None),
        (b"9" * 40, None),  # longer than any number a header should carry
    ],
)
def test_integer_is_none_unless_a_decimal_integer(raw: bytes, value: int | None) -> None:
    """Only a plain decimal integer parses."""
    assert RecordHeaders([("n", raw)]).integer("n") == value
    assert RecordHeaders([]).integer("n") is None


@pytest.mark.parametrize(
    "raw",
    [b"-1", b"99999999999999999", str(MAX_MS + 1).encode(), b"now", b"\xc3", b""],
)
def test_time_outside_the_calendar_is_absent(raw: bytes) -> None:
    """Negative, out-of-range and non-numeric timestamps read as absent, never raise."""
    assert RecordHeaders([("t", raw)]).time_ms("t") is None


def test_time_round_trips_at_millisecond_precision() -> None:
    """A time written with ``ms`` reads back equal (to the millisecond)."""
    when = datetime(2026, 12, 1, 3, 4, 5, 678000, tzinfo=UTC)
    assert RecordHeaders([("t", ms(when))]).time_ms("t") == when
    assert RecordHeaders([("t", str(MAX_MS).encode())]).time_ms("t") is not None
