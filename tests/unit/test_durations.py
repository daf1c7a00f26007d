"""Tests for producer.durations: parsing configuration durations and rendering them back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from producer.durations import Duration, format_duration, parse_duration

S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30 * S),
        ("2m", 120 * S),
        ("1h", 3600 * S),
        ("7d", 7 * 86400 * S),
        ("2w", 14 * 86400 * S),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("45", 45 * S),
        (" 10 m ", 600 * S),
        ("0s", timedelta(0)),
        (90, 90 * S),
        (0.25, timedelta(milliseconds=250)),
        (timedelta(minutes=3), 180 * S),
    ],
)
def test_parse_accepts_units_numbers_and_timedeltas(text: object, expected: timedelta) -> None:
    """A number with an optional unit (ms, s, m, h, d, w), a bare number of seconds or a
    timedelta parses to that timedelta; no unit means seconds."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not a duration"),
        ("fast", "not a duration"),
        ("10 minutes", "not a duration"),
        ("5y", "not a duration"),
        ("-5s", "not a duration"),
        ("1e3s", "not a duration"),
        (-1, "cannot be negative"),
        (True, "number of seconds"),
        (None, "number of seconds"),
        ([5], "number of seconds"),
    ],
)
def test_parse_rejects_what_is_not_a_duration(value: object, message: str) -> None:
    """Strings of another shape, negative numbers, booleans and other types raise ValueError
    saying what a duration looks like."""
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5 * S, "5s"),
        (30 * S, "30s"),
        (90 * S, "90s"),
        (120 * S, "2m"),
        (3600 * S, "1h"),
        (5400 * S, "90m"),
        (86400 * S, "1d"),
        (36 * 3600 * S, "36h"),
        (7 * 86400 * S, "1w"),
        (10 * 86400 * S, "10d"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(0), "0s"),
    ],
)
def test_format_renders_the_largest_exact_unit(value: timedelta, expected: str) -> None:
    """Formatting picks the largest unit that divides the duration exactly, so topic names stay
    short (``retry.2m``, not ``retry.120s``); fractions of a second render as ms."""
    assert format_duration(value) == expected


@pytest.mark.parametrize("text", ["5s", "30s", "2m", "90m", "6h", "24h", "7d", "250ms"])
def test_format_then_parse_gives_the_same_duration(text: str) -> None:
    """Parsing what format_duration renders gives back the same duration."""
    value = parse_duration(text)
    assert parse_duration(format_duration(value)) == value


class _Model(BaseModel):
    delay: Duration


def test_duration_field_parses_on_validation_and_serializes_short() -> None:
    """A Duration field validates strings into timedeltas, dumps back to the short form and
    reports a bad value as a validation error on that field."""
    model = _Model.model_validate({"delay": "2m"})
    assert model.delay == 120 * S
    assert model.model_dump() == {"delay": "2m"}
    assert model.model_dump_json() == '{"delay":"2m"}'
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"delay": "soon"})
    assert caught.value.errors()[0]["loc"] == ("delay",)
