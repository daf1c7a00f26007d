"""Tests for dispatcher.delivery_log: the attempt record the dispatcher writes per delivery."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatcher.delivery_log import AttemptRecord, attempt_record

AT = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
FIRST: dict[str, Any] = {
    "stream_id": "est_1",
    "event_id": "evt_1",
    "event_type": "user.created",
    "attempt": 1,
    "status": "success",
    "http_status": 200,
    "error": None,
    "duration_ms": 12.345,
    "at": AT,
    "next_attempt_at": None,
    "event_time": datetime(2026, 11, 26, 11, 59, 59, 999000, tzinfo=UTC),
    "purpose": None,
    "origin_topic": "tidings.lifecycle",
    "origin_partition": 0,
    "origin_offset": 42,
}
RETRY: dict[str, Any] = {
    **FIRST,
    "attempt": 2,
    "status": "retrying",
    "http_status": None,
    "error": "timeout after 15s",
    "next_attempt_at": datetime(2026, 11, 26, 12, 1, tzinfo=UTC),
    "event_time": None,
    "purpose": "test",
    "origin_topic": None,
    "origin_partition": None,
    "origin_offset": None,
}


def test_the_writer_takes_exactly_the_models_fields() -> None:
    """A field added to AttemptRecord must be added to the writer too."""
    assert list(inspect.signature(attempt_record).parameters) == list(AttemptRecord.model_fields)


@pytest.mark.parametrize("fields", [FIRST, RETRY], ids=["success", "retrying"])
def test_the_written_record_is_what_the_model_writes_and_reads(fields: dict[str, Any]) -> None:
    """The bytes equal the model's own dump, and parse back into the same record."""
    written = attempt_record(**fields)
    model = AttemptRecord(**fields)
    assert written == model.to_record()
    assert AttemptRecord.from_record(written) == model
