"""Tests for admin.dlq's reading of dead-letter records: markers, times, replay jobs, output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from admin.dlq import DeadLetter, live_letters, marked_record, marker_headers, render_table
from dispatcher.jobs import Job
from schemas import constants
from schemas.record_headers import RecordHeaders

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def dead(partition: int, offset: int) -> Message:
    """A dead letter as the dispatcher writes it (two failures), at ``partition:offset``."""
    job = Job(
        stream_id="est_" + "a" * 22,
        event_id=f"evt_{partition:011d}{offset:011d}",
        event_type="user.created",
        value=b"avro-bytes",
        key=b"user-key",
        origin_topic="t.lifecycle",
        origin_partition=2,
        origin_offset=41,
        purpose="backfill",
    )
    failed = job.failed("HTTP 503", 503, AT - timedelta(minutes=5)).failed("HTTP 503", 503, AT)
    return Message(
        topic="t.dlq",
        partition=partition,
        offset=offset,
        key=failed.key,
        value=failed.value,
        headers=failed.headers(AT, reason="retries exhausted: HTTP 503"),
        timestamp=(TIMESTAMP_CREATE_TIME, int((AT + timedelta(seconds=1)).timestamp() * 1000)),
    )


def marker(partition: int, offset: int, names: tuple[int, int]) -> Message:
    """A purge marker at ``partition:offset`` naming the record at ``names``."""
    return Message(
        topic="t.dlq",
        partition=partition,
        offset=offset,
        headers=marker_headers(*names, "purged with tidings dlq purge"),
    )


def test_markers_and_the_records_they_name_are_left_out() -> None:
    """A marker hides exactly the record at its partition:offset; it is itself no dead letter,
    and the same offset in another partition stays."""
    messages = [dead(0, 0), dead(0, 1), dead(1, 1), marker(0, 2, (0, 1)), dead(0, 3)]
    letters, markers = live_letters(messages)
    assert [(x.partition, x.offset) for x in letters] == [(0, 0), (0, 3), (1, 1)]
    assert markers == 1


def test_a_marker_can_name_a_record_read_after_it() -> None:
    """Order of reading does not matter: a marker hides its record wherever it was read."""
    letters, _ = live_letters([marker(1, 5, (0, 0)), dead(0, 0), dead(0, 1)])
    assert [(x.partition, x.offset) for x in letters] == [(0, 1)]


def test_malformed_markers_hide_nothing_but_are_still_markers() -> None:
    """A marker whose value is not partition:offset removes no record and is not listed."""
    broken = Message(
        topic="t.dlq", partition=0, offset=9, headers=[(constants.HEADER_PURGED, b"x")]
    )
    letters, markers = live_letters([dead(0, 0), broken])
    assert [(x.partition, x.offset) for x in letters] == [(0, 0)]
    assert markers == 1
    assert marked_record(RecordHeaders({constants.HEADER_PURGED: b"3:17"})) == (3, 17)
    assert marked_record(RecordHeaders({constants.HEADER_PURGED: b"3:"})) is None
    assert marked_record(RecordHeaders({constants.HEADER_PURGED: b"\xff:\xfe"})) is None
    assert marked_record(RecordHeaders({})) is None


def test_markers_carry_no_stream_or_event_header() -> None:
    """Readers that do not know markers (they look for a stream and event id) skip them."""
    names = dict(marker_headers(0, 1, "why"))
    assert constants.HEADER_STREAM_ID not in names
    assert constants.HEADER_EVENT_ID not in names
    assert names[constants.HEADER_PURGED] == b"0:1"
    assert names[constants.HEADER_PURGE_REASON] == b"why"


def test_failed_at_is_the_last_failure_else_the_record_time() -> None:
    """The dead-letter time is the last-failure header; without it, the record timestamp."""
    assert DeadLetter.of(dead(0, 0)).failed_at == AT
    bare = Message(
        topic="t.dlq", partition=0, offset=0, headers=[], timestamp=(TIMESTAMP_CREATE_TIME, 1000)
    )
    assert DeadLetter.of(bare).failed_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_a_replayed_job_starts_afresh_but_keeps_what_identifies_it() -> None:
    """Replay resets attempts and failure details and keeps stream, event, type, origin,
    purpose, key and bytes."""
    letter = DeadLetter.of(dead(0, 0))
    assert letter.job().attempts == 2
    fresh = letter.fresh_job()
    assert fresh == Job(
        stream_id="est_" + "a" * 22,
        event_id=letter.event_id,
        event_type="user.created",
        value=b"avro-bytes",
        key=b"user-key",
        attempts=0,
        origin_topic="t.lifecycle",
        origin_partition=2,
        origin_offset=41,
        purpose="backfill",
    )


def test_json_has_every_header_and_the_coordinates() -> None:
    """``--json`` shows named fields, the raw headers and where the record lies."""
    doc = DeadLetter.of(dead(1, 7)).to_json()
    assert doc["partition"] == 1
    assert doc["offset"] == 7
    assert doc["failed_at"] == "2026-05-01T12:00:00.000Z"
    assert doc["timestamp"] == "2026-05-01T12:00:01.000Z"
    assert doc["first_failure_at"] == "2026-05-01T11:55:00.000Z"
    assert doc["attempts"] == 2
    assert doc["last_http_status"] == 503
    assert doc["last_error"] == "HTTP 503"
    assert doc["reason"] == "retries exhausted: HTTP 503"
    assert doc["purpose"] == "backfill"
    assert (doc["original_topic"], doc["original_partition"], doc["original_offset"]) == (
        "t.lifecycle",
        2,
        41,
    )
    assert doc["headers"][constants.HEADER_DLQ_REASON] == "retries exhausted: HTTP 503"
    assert set(doc["headers"]) >= {constants.HEADER_STREAM_ID, constants.HEADER_LAST_FAILURE_AT}


def test_render_table_pads_columns_and_right_aligns_numbers() -> None:
    """Columns line up under their headings; numeric columns are right-aligned."""
    table = render_table(("NAME", "COUNT", "NOTE"), [("a", 5, "x"), ("longer", 12, "")], {1})
    assert table.splitlines() == [
        "NAME    COUNT  NOTE",
        "a           5  x",
        "longer     12",
    ]
