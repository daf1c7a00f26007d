"""What an Events API request asks for: where to start and which types, read from the query
and ``Last-Event-ID``, and where a cursor resumes given the topic's watermarks. Pure: every
refusal is an :class:`~admin.api.errors.ApiError` naming the parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from multidict import MultiMapping

from admin.api.errors import ApiError, invalid
from admin.api.event_cursor import CursorError, Positions, decode_cursor
from dispatcher.subscriptions import validate_pattern

#: The route's path.
EVENTS_PATH: Final = "/v1/events"
#: The query parameter a browser's EventSource (which cannot send headers) passes the token in.
ACCESS_TOKEN_PARAM: Final = "access_token"
_QUERY: Final = frozenset({"from", "from_timestamp", "event_type", ACCESS_TOKEN_PARAM})
#: Most event types one connection may name, as Auth0's API allows (none named: every type).
MAX_EVENT_TYPES: Final = 20


@dataclass(frozen=True)
class StartRequest:
    """Where a connection starts, and which types it wants (no patterns: every type)."""

    cursor: Positions | None = None
    from_ms: int | None = None
    patterns: tuple[str, ...] = ()


def _timestamp_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a timestamp needs a time zone (Z or +hh:mm)")
    return int(moment.timestamp() * 1000)


def parse_request(query: MultiMapping[str], last_event_id: str | None) -> StartRequest:
    """Read the query and ``Last-Event-ID`` (which wins over ``from``); 400 naming the bad
    parameter."""
    for name in query:
        if name not in _QUERY:
            raise invalid(name, "unknown query parameter")
    for name in ("from", "from_timestamp"):
        if len(query.getall(name, [])) > 1:
            raise invalid(name, "given more than once")
    cursor: Positions | None = None
    field, text = ("Last-Event-ID", last_event_id) if last_event_id else ("from", query.get("from"))
    if text is not None:
        try:
            cursor = decode_cursor(text)
        except CursorError as exc:
            raise invalid(field, str(exc)) from None
    from_ms: int | None = None
    if "from_timestamp" in query:
        if "from" in query:
            raise invalid("from_timestamp", "give either from or from_timestamp")
        try:
            from_ms = _timestamp_ms(query["from_timestamp"])
        except (ValueError, OverflowError, OSError):
            raise invalid(
                "from_timestamp", "an RFC 3339 time (2026-01-01T00:00:00Z) or epoch milliseconds"
            ) from None
    patterns: list[str] = []
    for given in query.getall("event_type", []):
        for pattern in filter(None, (p.strip() for p in given.split(","))):
            try:
                patterns.append(validate_pattern(pattern))
            except ValueError as exc:
                raise invalid("event_type", str(exc)) from None
    if len(patterns) > MAX_EVENT_TYPES:
        raise invalid(
            "event_type", f"at most {MAX_EVENT_TYPES} types (wildcards such as user.* count once)"
        )
    return StartRequest(cursor, from_ms, tuple(patterns))


def resolve_cursor(cursor: Positions, marks: Mapping[int, tuple[int, int]]) -> Positions:
    """The start of every partition for a cursor, given each partition's (low, high)
    watermarks. 410 when the topic no longer holds where the cursor points (retention moved
    the low watermark past it); 400 for a cursor of another topic. Partitions the cursor
    does not name (added since) start at their oldest record."""
    for partition, offset in cursor.items():
        if partition not in marks:
            raise invalid("from", f"not a cursor of this topic (no partition {partition})")
        low, high = marks[partition]
        if offset > high:
            raise invalid("from", "not a cursor of this topic (past its end)")
        if offset < low:
            raise ApiError(
                410,
                "cursor_expired",
                "the events after this cursor are past the lifecycle topic's retention; "
                "start again with from_timestamp",
                "from",
            )
    return {p: cursor.get(p, low) for p, (low, _high) in marks.items()}
