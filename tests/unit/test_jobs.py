"""Tests for dispatcher.jobs: jobs read back from records someone else may have written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dispatcher.engine import identity_mismatch
from dispatcher.jobs import Job, due_at
from dispatcher.rendering import Rendered
from schemas import constants
from schemas.record_headers import RecordHeaders

AT = datetime(2026, 12, 1, tzinfo=UTC)


class Record:
    """The few Message methods a job reads (pure logic: no broker needed)."""

    def __init__(self, headers: list[tuple[str, bytes]], value: bytes = b"v") -> None:
        self._headers = headers
        self._value = value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"k"

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return 7


def test_a_retry_record_with_hostile_headers_reads_as_neutral_values() -> None:
    """Out-of-range, non-numeric and cut headers give neutral values, never an exception."""
    record: Any = Record(
        [
            (constants.HEADER_STREAM_ID, b"\xff\xfe"),
            (constants.HEADER_ATTEMPT, b"lots"),
            (constants.HEADER_ORIGINAL_PARTITION, b"-9"),
            (constants.HEADER_ORIGINAL_OFFSET, b"1e9"),
            (constants.HEADER_FIRST_FAILURE_AT, b"99999999999999999999"),
            (constants.HEADER_LAST_ERROR, "fail é".encode()[:-1]),
            (constants.HEADER_LAST_HTTP_STATUS, b"70000"),
            (constants.HEADER_DUE_AT, b"-5"),
        ]
    )
    headers = RecordHeaders.of(record)
    job = Job.from_retry(record, headers)
    assert job.stream_id == "\ufffd\ufffd"
    assert job.attempts == 0
    assert (job.origin_partition, job.origin_offset) == (-1, -1)
    assert job.first_failure_at is None
    assert job.last_error == "fail \ufffd"
    assert job.last_http_status is None
    assert due_at(headers) is None


def test_written_headers_never_cut_a_character() -> None:
    """A long error of multi-byte characters is cut at a character boundary (1 KB)."""
    job = Job("est_x", "evt_x", "user.created", b"v", None).failed("é" * 2000, 500, AT)
    headers = dict(job.headers(AT, reason="ü" * 2000))
    for name in (constants.HEADER_LAST_ERROR, constants.HEADER_DLQ_REASON):
        assert len(headers[name]) <= 1024
        headers[name].decode("utf-8")  # raises if a character was cut


def test_headers_that_contradict_the_body_are_named() -> None:
    """A type or id header that disagrees with the decoded event is a reason to give up;
    absent headers are not."""
    rendered = Rendered(b"{}", AT, "evt_body", "user.deleted")
    job = Job("est_x", "", "", b"v", None)
    assert identity_mismatch(job, rendered) is None
    assert "type header" in (identity_mismatch(job.identified("", "user.created"), rendered) or "")
    assert "id header" in (identity_mismatch(job.identified("evt_other", ""), rendered) or "")
    assert identity_mismatch(job.identified("evt_body", "user.deleted"), rendered) is None
