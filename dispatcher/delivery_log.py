"""The delivery log: one record per attempt in ``tidings.deliveries``, the source of
delivery history and stats for the admin service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict

#: success: delivered; retrying: failed, another attempt is scheduled; failed: dead-lettered.
AttemptStatus = Literal["success", "retrying", "failed"]


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

    def to_record(self) -> bytes:
        """The record value."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_record(cls, value: bytes) -> AttemptRecord:
        """Parse a record value."""
        return cls.model_validate_json(value)


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
    }
    return orjson.dumps(
        {key: value for key, value in fields.items() if value is not None},
        option=orjson.OPT_UTC_Z,
    )
