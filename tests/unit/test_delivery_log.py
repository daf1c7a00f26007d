"""Tests for dispatcher.delivery_log: the attempt records the dispatcher writes, batched per
stream."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatcher import delivery_log
from dispatcher.delivery_log import AttemptRecord, DeliveryLog, attempt_record

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


def line(stream_id: str, event_id: str) -> bytes:
    return attempt_record(**{**FIRST, "stream_id": stream_id, "event_id": event_id})


async def test_attempts_are_batched_per_stream_and_written_within_the_flush_delay() -> None:
    """Attempts of one stream become one record (key: the stream), one attempt per line,
    written by the timer without anyone calling flush."""
    written: list[tuple[bytes, bytes]] = []
    arrived = asyncio.Event()

    def write(key: bytes, value: bytes) -> None:
        written.append((key, value))
        if len(written) == 2:
            arrived.set()

    log = DeliveryLog(write)
    for event_id in ("evt_1", "evt_2", "evt_3"):
        log.add("est_a", line("est_a", event_id))
    log.add("est_b", line("est_b", "evt_9"))
    assert written == [], "nothing is written before the flush delay"
    await asyncio.wait_for(arrived.wait(), 5)
    records = {key: AttemptRecord.all_from_record(value) for key, value in written}
    assert [r.event_id for r in records[b"est_a"]] == ["evt_1", "evt_2", "evt_3"]
    assert [(r.stream_id, r.event_id) for r in records[b"est_b"]] == [("est_b", "evt_9")]


async def test_a_full_batch_is_written_at_once_and_flush_writes_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MAX_BATCH attempts make a record immediately; flush() writes what is pending."""
    monkeypatch.setattr(delivery_log, "MAX_BATCH", 3)
    written: list[bytes] = []
    log = DeliveryLog(lambda _key, value: written.append(value))
    for i in range(4):
        log.add("est_a", line("est_a", f"evt_{i}"))
    assert [len(AttemptRecord.all_from_record(v)) for v in written] == [3]
    log.flush()
    assert [len(AttemptRecord.all_from_record(v)) for v in written] == [3, 1]
    log.flush()
    assert len(written) == 2, "nothing pending: nothing written"


def test_a_single_attempt_record_still_parses() -> None:
    """Records written one attempt each (before batching) read back the same way."""
    (only,) = AttemptRecord.all_from_record(line("est_a", "evt_1"))
    assert only.event_id == "evt_1"
