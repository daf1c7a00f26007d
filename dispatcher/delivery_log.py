"""The delivery log in ``tidings.deliveries``: every attempt, the source of delivery history
and stats for the admin service.

A record's value is one or more attempts of one stream (its key), one JSON object per line.
The dispatcher gathers a stream's attempts for up to :data:`FLUSH_SECONDS` (or
:data:`MAX_BATCH` of them) into one record: a Kafka record per delivery cost about a quarter
of a dispatcher's throughput (bench/e2e.py), in the client and in the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict

#: success: delivered; retrying: failed, another attempt is scheduled; failed: dead-lettered;
#: parked: not attempted yet, waiting behind an earlier event of its subject that failed (a
#: stream with ordering "subject").
AttemptStatus = Literal["success", "retrying", "failed", "parked"]
#: How much of a receiver's answer to a failed attempt the log keeps (the first KB: enough to
#: see why a receiver refused, small enough to keep the log small).
MAX_RESPONSE_BODY = 1024


class AttemptRecord(BaseModel):
    """One delivery attempt of one event to one stream."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stream_id: str
    event_id: str
    event_type: str
    attempt: int
    status: AttemptStatus
    http_status: int | None = None
    error: str | None = None
    duration_ms: float
    at: datetime
    next_attempt_at: datetime | None = None
    event_time: datetime | None = None
    purpose: str | None = None
    #: Where the event itself lies, so it can be redelivered while the topic retains it.
    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    #: The start of the receiver's answer to a failed attempt (at most
    #: :data:`MAX_RESPONSE_BODY` characters; absent on success and from older dispatchers).
    response_body: str | None = None

    def to_record(self) -> bytes:
        """The record value."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_record(cls, value: bytes) -> AttemptRecord:
        """Parse one attempt (one line of a record value)."""
        return cls.model_validate_json(value)

    @classmethod
    def all_from_record(cls, value: bytes) -> list[AttemptRecord]:
        """Parse every attempt of a record value (one per line)."""
        return [cls.model_validate_json(line) for line in attempt_lines(value)]


def attempt_lines(value: bytes) -> list[bytes]:
    """The attempts of a record value, one JSON object each, unparsed."""
    return [line for line in value.split(b"\n") if line]


def attempt_record(
    *,
    stream_id: str,
    event_id: str,
    event_type: str,
    attempt: int,
    status: AttemptStatus,
    http_status: int | None,
    error: str | None,
    duration_ms: float,
    at: datetime,
    next_attempt_at: datetime | None,
    event_time: datetime | None,
    purpose: str | None,
    origin_topic: str | None,
    origin_partition: int | None,
    origin_offset: int | None,
    response_body: str | None = None,
) -> bytes:
    """The record value of one attempt, as :meth:`AttemptRecord.to_record` writes it (absent
    fields omitted, UTC as ``Z``), built without the model: the dispatcher writes one per
    delivery, and the parameters are the model's fields (a unit test holds them equal)."""
    fields = {
        "stream_id": stream_id,
        "event_id": event_id,
        "event_type": event_type,
        "attempt": attempt,
        "status": status,
        "http_status": http_status,
        "error": error,
        "duration_ms": duration_ms,
        "at": at,
        "next_attempt_at": next_attempt_at,
        "event_time": event_time,
        "purpose": purpose,
        "origin_topic": origin_topic,
        "origin_partition": origin_partition,
        "origin_offset": origin_offset,
        "response_body": response_body[:MAX_RESPONSE_BODY]
        if response_body is not None and status != "success"
        else None,
    }
    return orjson.dumps(
        {key: value for key, value in fields.items() if value is not None},
        option=orjson.OPT_UTC_Z,
    )


#: A stream's attempts are written at most this long after they happen.
FLUSH_SECONDS = 0.05
#: Attempts per record at most.
MAX_BATCH = 200

Write = Callable[[bytes, bytes], None]


class DeliveryLog:
    """Gathers attempts per stream and writes each stream's batch as one record.

    ``write(key, value)`` hands a record to the producer (not awaited: the log is history, not
    the source of truth). Attempts are pending for at most FLUSH_SECONDS; :meth:`flush`
    writes everything pending (at shutdown, before the producer's final flush).
    """

    def __init__(self, write: Write) -> None:
        self._write = write
        self._pending: dict[str, list[bytes]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, stream_id: str, attempt: bytes) -> None:
        """Log one attempt (a value built by :func:`attempt_record`)."""
        lines = self._pending.get(stream_id)
        if lines is None:
            lines = self._pending[stream_id] = []
        lines.append(attempt)
        if len(lines) >= MAX_BATCH:
            self._write_batch(stream_id, self._pending.pop(stream_id))
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write every pending batch now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        for stream_id, lines in pending.items():
            self._write_batch(stream_id, lines)

    def _write_batch(self, stream_id: str, lines: list[bytes]) -> None:
        self._write(stream_id.encode(), b"\n".join(lines))
