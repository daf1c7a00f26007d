"""Times typed on the command line: ISO 8601, ``now``, or relative to now like ``-2h``.

Relative times count back from now with the duration forms of the configuration (``-30m``,
``-2h``, ``-7d``, ``-90`` seconds). ISO 8601 times without an offset are taken as UTC, so a
command means the same on every machine. Every result is an aware UTC datetime.
"""

from __future__ import annotations

from datetime import UTC, datetime

from producer.durations import parse_duration

_HINT = "use ISO 8601 (2026-05-01T12:00:00Z), 'now', or a relative time like -30m, -2h, -7d"


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """Parse ``value`` into an aware UTC datetime; ``now`` anchors relative times (tests).

    Raises ``ValueError`` with a message fit to show the user as it is.
    """
    text = value.strip()
    anchor = (now or datetime.now(UTC)).astimezone(UTC)
    if text.lower() == "now":
        return anchor
    if text.startswith("-"):
        try:
            return anchor - parse_duration(text[1:])
        except ValueError:
            raise ValueError(f"{value!r} is not a time: {_HINT}") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time: {_HINT}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
