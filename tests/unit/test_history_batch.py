"""Folding a fetch into one write of the history store, and the compact attempt lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from admin.history.batch import Batch, LetterAdded, LetterPurged, letter_change
from admin.history.model import Coordinates, EventFacts, decode_attempts, encode_attempt
from dispatcher.delivery_log import AttemptRecord, AttemptStatus
from schemas import constants
from schemas.record_headers import RecordHeaders

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(n: int, status: AttemptStatus, seconds: float, **extra: object) -> AttemptRecord:
    return AttemptRecord.model_validate(
        {
            "stream_id": "est_s",
            "event_id": "evt_a",
            "event_type": "user.created",
            "attempt": n,
            "status": status,
            "duration_ms": 2.5,
            "at": T0 + timedelta(seconds=seconds),
            **extra,
        }
    )


def test_attempts_of_one_event_fold_into_one_update_with_the_latest_status() -> None:
    """Out-of-order attempts give the earliest first time and the latest status and origin;
    counters count each attempt in its second and minute."""
    batch = Batch()
    batch.add_attempt(
        record(2, "success", 70, origin_topic="life", origin_partition=0, origin_offset=9)
    )
    batch.add_attempt(
        record(1, "retrying", 5, origin_topic="life", origin_partition=0, origin_offset=1)
    )
    (update,) = batch.events.values()
    assert (update.first_at, update.last_n, update.status) == (
        round((T0 + timedelta(seconds=5)).timestamp() * 1e6),
        2,
        0,
    )
    assert update.origin == Coordinates("life", 0, 9)
    t0 = int(T0.timestamp())
    assert batch.minutes == {("est_s", t0): [0, 1, 0], ("est_s", t0 + 60): [1, 0, 0]}
    assert batch.seconds == {("est_s", t0 + 5): [0, 1, 0], ("est_s", t0 + 70): [1, 0, 0]}
    assert batch.attempts == 2
    assert not batch  # no offsets read yet: nothing to write
    batch.read("deliveries", 3, 41)
    assert batch.offsets == {("deliveries", 3): 42}


def test_an_attempt_line_round_trips_and_keeps_only_a_failures_answer() -> None:
    """The stored line gives the attempt back; a success's response body is not kept and a
    failure's is cut to 1 KB."""
    facts = EventFacts("est_s", "evt_a", "user.created", None, None, None)
    failed = record(1, "retrying", 1, http_status=503, error="HTTP 503", response_body="x" * 5000)
    ok = record(2, "success", 2, http_status=200, response_body="fine")
    lines = encode_attempt(ok) + encode_attempt(failed)
    first, second = decode_attempts(lines, facts)
    assert (first.attempt, first.status, first.http_status, first.error) == (
        1,
        "retrying",
        503,
        "HTTP 503",
    )
    assert first.response_body == "x" * 1024
    assert (second.status, second.response_body, second.at) == ("success", None, ok.at)
    assert len(encode_attempt(record(1, "success", 1, http_status=200))) < 50


def test_dead_letter_records_become_letters_and_purge_markers() -> None:
    """A dead letter names its stream and event; a purge marker names the letter it removes;
    a record without ids is ignored."""
    where = Coordinates("dlq", 1, 7)
    headers = {
        constants.HEADER_STREAM_ID: b"est_s",
        constants.HEADER_EVENT_ID: b"evt_a",
        constants.HEADER_EVENT_TYPE: b"user.created",
        constants.HEADER_DLQ_REASON: b"retries exhausted",
        constants.HEADER_LAST_HTTP_STATUS: b"503",
    }
    change = letter_change(where, RecordHeaders(headers), int(T0.timestamp() * 1000))
    assert isinstance(change, LetterAdded)
    assert (change.letter.reason, change.letter.http_status, change.letter.at) == (
        "retries exhausted",
        503,
        T0,
    )
    purge = letter_change(
        Coordinates("dlq", 1, 8), RecordHeaders({constants.HEADER_PURGED: b"1:7"}), 0
    )
    assert purge == LetterPurged(where)
    assert letter_change(where, RecordHeaders({}), 0) is None
