"""Durations in configuration: ``30s``, ``2m``, ``1h``, ``7d``, or a number of seconds.

Parsed once, at load, into :class:`datetime.timedelta`, and rendered back into the short form
for topic names such as ``tidings.retry.30s``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse ``"30s"``, ``"2m"``, ``"1h"``, ``"7d"``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: use e.g. 500ms, 30s, 2m, 1h, 7d")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError("a duration is a number of seconds or a string like '30s'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    """Render the shortest exact form: ``timedelta(seconds=120)`` is ``"2m"``."""
    millis = round(value.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


#: A pydantic field type: accepts the forms above, serializes back to the short string.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
