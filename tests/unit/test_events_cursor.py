"""Tests for the Events API's pure parts: cursors, SSE frames, request parsing, resumption."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from admin.api.connection_limit import ConnectionLimiter
from admin.api.errors import ApiError
from admin.api.event_cursor import CursorError, decode_cursor, encode_cursor
from admin.api.events_request import parse_request, resolve_cursor
from admin.api.sse import (
    CONNECTION_TIMEOUT,
    connected_frame,
    error_frame,
    event_frame,
    offset_only_frame,
)


@pytest.mark.parametrize("positions", [{0: 0}, {0: 12, 1: 7}, {5: 2**62, 0: 1, 3: 0}])
def test_cursor_round_trips(positions: dict[int, int]) -> None:
    """A cursor decodes to the positions it was made from; it is URL-safe and unpadded."""
    cursor = encode_cursor(positions)
    assert decode_cursor(cursor) == positions
    assert "=" not in cursor
    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "cursor",
    ["", "!!", "MDoxOg", "abc", encode_cursor({0: 1})[:-1], "MDoxLDA6Mg", "x" * 9000, "MDowMQ"],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    """Garbage, truncation, a repeated partition and leading zeros are not cursors."""
    with pytest.raises(CursorError):
        decode_cursor(cursor)


def test_frames_are_auth0_shaped_sse() -> None:
    """An event frame carries type, id and {"offset", "event"}; offset-only carries the id."""
    frame = event_frame("user.created", "MDox", b'{"id":"evt_1"}')
    assert frame == (
        b'event: user.created\nid: MDox\ndata: {"offset":"MDox","event":{"id":"evt_1"}}\n\n'
    )
    assert offset_only_frame("MDox") == b'event: offset-only\nid: MDox\ndata: {"offset":"MDox"}\n\n'
    assert connected_frame() == b":connected\n\n"


def test_error_frames_nest_code_message_and_offset_as_auth0s() -> None:
    """An error's data is {"error": {"code", "message", "offset"?}}, Auth0's shape, so a
    receiver written for Auth0 reads errorPayload.error; the offset only when known."""
    frame = error_frame(CONNECTION_TIMEOUT, "cycled", "MDox")
    assert frame == (
        b'event: error\ndata: {"error":{"code":"connection_timeout","message":"cycled",'
        b'"offset":"MDox"}}\n\n'
    )
    assert b"offset" not in error_frame("processing_error", "failed")


def test_last_event_id_wins_over_from() -> None:
    """The header's cursor is used when both are given."""
    header, query = encode_cursor({0: 5}), encode_cursor({0: 1})
    start = parse_request(MultiDict({"from": query}), header)
    assert start.cursor == {0: 5}


def test_event_types_repeat_and_take_wildcards() -> None:
    """Repeated event_type parameters (or commas) all apply."""
    query = MultiDict([("event_type", "user.*"), ("event_type", "group.created,group.updated")])
    assert parse_request(query, None).patterns == ("user.*", "group.created", "group.updated")


@pytest.mark.parametrize(
    ("query", "header", "field"),
    [
        ({"from": "nope"}, None, "from"),
        ({}, "nope", "Last-Event-ID"),
        ({"event_type": "user.craeted"}, None, "event_type"),
        ({"from_timestamp": "yesterday"}, None, "from_timestamp"),
        ({"from_timestamp": "2026-01-01T00:00:00"}, None, "from_timestamp"),
        ({"from": encode_cursor({0: 1}), "from_timestamp": "0"}, None, "from_timestamp"),
        ({"limit": "5"}, None, "limit"),
        ({"event_type": ",".join(["user.created"] * 21)}, None, "event_type"),
    ],
)
def test_bad_requests_name_the_parameter(
    query: dict[str, str], header: str | None, field: str
) -> None:
    """Each malformed input is a 400 naming the offending parameter."""
    with pytest.raises(ApiError) as info:
        parse_request(MultiDict(query), header)
    assert (info.value.status, info.value.field) == (400, field)


def test_resolve_cursor_fills_new_partitions_and_refuses_expired_or_foreign_ones() -> None:
    """Named partitions resume where the cursor says; others start at their oldest record;
    a cursor below the low watermark is 410; one past the end or of another topic is 400."""
    marks = {0: (0, 10), 1: (4, 9), 2: (0, 0)}
    assert resolve_cursor({0: 7, 1: 5}, marks) == {0: 7, 1: 5, 2: 0}
    with pytest.raises(ApiError) as expired:
        resolve_cursor({1: 3}, marks)
    assert expired.value.status == 410
    assert "from_timestamp" in expired.value.message
    for foreign in ({0: 11}, {7: 0}):
        with pytest.raises(ApiError) as info:
            resolve_cursor(foreign, marks)
        assert info.value.status == 400


def test_limiter_counts_per_token_and_frees_on_exit() -> None:
    """A token gets at most `limit` connections (429 with Retry-After past it); closing
    one frees its place; other tokens are counted apart."""
    limiter = ConnectionLimiter(1)
    with limiter.hold("a"):
        with pytest.raises(ApiError) as info, limiter.hold("a"):
            pass
        assert info.value.status == 429
        assert info.value.headers["Retry-After"].isdigit()
        with limiter.hold("b"):
            pass
    with limiter.hold("a"):
        pass
