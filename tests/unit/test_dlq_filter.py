"""Tests for admin.dlq's filters: validating the options and selecting dead letters."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Message

from admin.dlq import DeadLetter, DlqError, DlqFilter
from dispatcher.jobs import Job
from schemas.ids import new_event_id, new_stream_id

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
STREAM = new_stream_id()
OTHER_STREAM = new_stream_id()


def letter(
    *, stream_id: str = STREAM, event_type: str = "user.created", at: datetime = NOW
) -> DeadLetter:
    """A dead letter as the dispatcher writes it."""
    job = Job(
        stream_id=stream_id, event_id=new_event_id(), event_type=event_type, value=b"x", key=b"k"
    )
    headers = job.failed("HTTP 400", 400, at).headers(at, reason="permanent failure: HTTP 400")
    return DeadLetter.of(Message(topic="dlq", partition=0, offset=0, headers=headers))


def options(**given: Any) -> argparse.Namespace:
    """The filter options as argparse leaves them, none given unless ``given``."""
    values = {"stream": None, "event_id": None, "type": None, "since": None, "until": None}
    values.update(given)
    return argparse.Namespace(**values)


def test_no_options_is_the_empty_filter_that_selects_everything() -> None:
    """Without options the filter is empty (purge then deletes records) and passes all."""
    selects = DlqFilter.from_args(options(), NOW)
    assert selects.is_empty
    assert selects(letter())
    assert selects(letter(event_type="organization.created"))


def test_options_are_parsed_into_the_filter() -> None:
    """Ids, type patterns and the time window land in the filter as typed values."""
    event_id = new_event_id()
    selects = DlqFilter.from_args(
        options(
            stream=STREAM,
            event_id=[event_id],
            type=["user.*"],
            since="-2h",
            until="2026-05-01T11:30:00Z",
        ),
        NOW,
    )
    assert selects == DlqFilter(
        STREAM,
        frozenset({event_id}),
        ("user.*",),
        NOW - timedelta(hours=2),
        NOW - timedelta(minutes=30),
    )
    assert not selects.is_empty


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"stream": "est_short"}, "--stream: 'est_short' is not a stream id"),
        ({"stream": new_event_id()}, "--stream: .* is not a stream id"),
        ({"event_id": [new_event_id(), "evt_x"]}, "--event-id: 'evt_x' is not an event id"),
        ({"type": ["user.craeted"]}, "--type: invalid subscription pattern 'user.craeted'"),
        ({"type": ["user*"]}, "--type: invalid subscription pattern 'user\\*'"),
        ({"since": "yesterday"}, "--from: 'yesterday' is not a time"),
        ({"until": "2h"}, "--to: '2h' is not a time"),
        ({"since": "-1h", "until": "-2h"}, "--from is later than --to"),
    ],
)
def test_bad_options_raise_one_error_naming_the_option(given: dict[str, Any], message: str) -> None:
    """Each invalid option is a DlqError whose one line names the option and the value."""
    with pytest.raises(DlqError, match=message):
        DlqFilter.from_args(options(**given), NOW)


def test_stream_filter_selects_only_that_stream() -> None:
    """--stream keeps the stream's dead letters and drops every other stream's."""
    selects = DlqFilter(stream_id=STREAM)
    assert selects(letter())
    assert not selects(letter(stream_id=OTHER_STREAM))


def test_event_ids_select_any_of_them() -> None:
    """Repeated --event-id selects each of the given events and nothing else."""
    first, second, third = letter(), letter(), letter()
    selects = DlqFilter(event_ids=frozenset({first.event_id, second.event_id}))
    assert [selects(x) for x in (first, second, third)] == [True, True, False]


@pytest.mark.parametrize(
    ("types", "event_type", "expected"),
    [
        (("user.created",), "user.created", True),
        (("user.created",), "user.deleted", False),
        (("user.*",), "user.deleted", True),
        (("user.*",), "organization.created", False),
        (("organization.member.*", "user.deleted"), "organization.member.role.assigned", True),
        (("organization.member.*", "user.deleted"), "user.deleted", True),
        (("organization.member.*", "user.deleted"), "organization.updated", False),
        (("*",), "organization.updated", True),
    ],
)
def test_types_match_like_subscriptions(
    types: tuple[str, ...], event_type: str, expected: bool
) -> None:
    """--type patterns, wildcards included, match as stream subscriptions do."""
    assert DlqFilter(types=types)(letter(event_type=event_type)) is expected


def test_time_window_includes_both_ends() -> None:
    """--from and --to bound the dead-letter time inclusively."""
    since, until = NOW - timedelta(hours=2), NOW - timedelta(minutes=30)
    selects = DlqFilter(since=since, until=until)
    assert selects(letter(at=since))
    assert selects(letter(at=until))
    assert selects(letter(at=NOW - timedelta(hours=1)))
    assert not selects(letter(at=since - timedelta(milliseconds=1)))
    assert not selects(letter(at=until + timedelta(milliseconds=1)))


def test_open_ended_windows() -> None:
    """--from alone has no upper bound and --to alone no lower bound."""
    old, new = letter(at=NOW - timedelta(days=3)), letter(at=NOW)
    assert [DlqFilter(since=NOW - timedelta(days=1))(x) for x in (old, new)] == [False, True]
    assert [DlqFilter(until=NOW - timedelta(days=1))(x) for x in (old, new)] == [True, False]


def test_every_criterion_must_hold() -> None:
    """Criteria combine with AND: a dead letter of the right stream but wrong type is out."""
    selects = DlqFilter(stream_id=STREAM, types=("user.*",))
    assert selects(letter(event_type="user.deleted"))
    assert not selects(letter(event_type="organization.created"))
    assert not selects(letter(stream_id=OTHER_STREAM, event_type="user.deleted"))
