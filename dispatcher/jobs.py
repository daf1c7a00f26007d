"""A delivery job: one event for one stream, read from the lifecycle topic or a retry tier,
and how its Kafka headers carry it between tiers and into the dead-letter topic."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from schemas import constants
from schemas.record_headers import RecordHeaders, ms


@dataclass(frozen=True, slots=True)
class Job:
    """Everything needed to attempt, retry or dead-letter one event for one stream."""

    stream_id: str
    event_id: str
    event_type: str
    value: bytes
    key: bytes | None
    attempts: int = 0
    origin_topic: str = ""
    origin_partition: int = -1
    origin_offset: int = -1
    first_failure_at: datetime | None = None
    last_error: str | None = None
    last_http_status: int | None = None
    purpose: str | None = None

    @classmethod
    def from_lifecycle(cls, stream_id: str, message: Any, headers: RecordHeaders) -> Job:
        """A first attempt for a record of the lifecycle topic. The type and id come from the
        headers when present; a record without them is identified once decoded."""
        return cls(
            stream_id=stream_id,
            event_id=headers.text(constants.HEADER_EVENT_ID),
            event_type=headers.text(constants.HEADER_EVENT_TYPE),
            value=message.value() or b"",
            key=message.key(),
            origin_topic=message.topic() or "",
            origin_partition=message.partition() or 0,
            origin_offset=message.offset() or 0,
            purpose=headers.optional_text(constants.HEADER_PURPOSE),
        )

    @classmethod
    def from_retry(cls, message: Any, headers: RecordHeaders) -> Job:
        """A job read back from a retry tier (or a dead letter being replayed). Headers that
        are missing or unreadable take their neutral value (no attempts, unknown origin)."""
        attempts = headers.integer(constants.HEADER_ATTEMPT)
        partition = headers.integer(constants.HEADER_ORIGINAL_PARTITION)
        offset = headers.integer(constants.HEADER_ORIGINAL_OFFSET)
        status = headers.integer(constants.HEADER_LAST_HTTP_STATUS)
        return cls(
            stream_id=headers.text(constants.HEADER_STREAM_ID),
            event_id=headers.text(constants.HEADER_EVENT_ID),
            event_type=headers.text(constants.HEADER_EVENT_TYPE),
            value=message.value() or b"",
            key=message.key(),
            attempts=attempts if attempts is not None and 0 <= attempts < 1_000_000 else 0,
            origin_topic=headers.text(constants.HEADER_ORIGINAL_TOPIC),
            origin_partition=partition if partition is not None and partition >= 0 else -1,
            origin_offset=offset if offset is not None and offset >= 0 else -1,
            first_failure_at=headers.time_ms(constants.HEADER_FIRST_FAILURE_AT),
            last_error=headers.optional_text(constants.HEADER_LAST_ERROR),
            last_http_status=status if status is not None and 100 <= status <= 999 else None,
            purpose=headers.optional_text(constants.HEADER_PURPOSE),
        )

    def identified(self, event_id: str, event_type: str) -> Job:
        """This job with the id and type its decoded event carries (for records whose headers
        lacked them)."""
        return replace(self, event_id=event_id, event_type=event_type)

    def failed(self, error: str | None, http_status: int | None, at: datetime) -> Job:
        """This job after one more failed attempt."""
        return replace(
            self,
            attempts=self.attempts + 1,
            first_failure_at=self.first_failure_at or at,
            last_error=error,
            last_http_status=http_status,
        )

    @classmethod
    def unreadable(cls, message: Any) -> Job:
        """A record whose headers cannot be used: kept whole for the dead-letter topic."""
        headers = RecordHeaders.of(message)
        job = cls.from_lifecycle(headers.text(constants.HEADER_STREAM_ID), message, headers)
        return replace(job, purpose=None)

    def fresh(self) -> Job:
        """This job as a new first attempt: same event, stream, origin and purpose, no
        failures (for redelivery and dead-letter replay)."""
        return replace(
            self, attempts=0, first_failure_at=None, last_error=None, last_http_status=None
        )

    def headers(
        self, at: datetime, *, due_at: datetime | None = None, reason: str | None = None
    ) -> list[tuple[str, bytes]]:
        """Headers for a retry-tier or dead-letter record, readable without the code."""
        headers = [
            (constants.HEADER_STREAM_ID, self.stream_id.encode()),
            (constants.HEADER_EVENT_ID, self.event_id.encode()),
            (constants.HEADER_EVENT_TYPE, self.event_type.encode()),
            (constants.HEADER_ATTEMPT, str(self.attempts).encode()),
            (constants.HEADER_ORIGINAL_TOPIC, self.origin_topic.encode()),
            (constants.HEADER_ORIGINAL_PARTITION, str(self.origin_partition).encode()),
            (constants.HEADER_ORIGINAL_OFFSET, str(self.origin_offset).encode()),
            (constants.HEADER_LAST_FAILURE_AT, ms(at)),
        ]
        if self.first_failure_at is not None:
            headers.append((constants.HEADER_FIRST_FAILURE_AT, ms(self.first_failure_at)))
        if self.last_error:
            headers.append((constants.HEADER_LAST_ERROR, _cut(self.last_error)))
        if self.last_http_status is not None:
            headers.append((constants.HEADER_LAST_HTTP_STATUS, str(self.last_http_status).encode()))
        if self.purpose:
            headers.append((constants.HEADER_PURPOSE, self.purpose.encode()))
        if due_at is not None:
            headers.append((constants.HEADER_DUE_AT, ms(due_at)))
        if reason is not None:
            headers.append((constants.HEADER_DLQ_REASON, _cut(reason)))
        return headers


def _cut(text: str, limit: int = 1024) -> bytes:
    """At most ``limit`` bytes of UTF-8, never ending inside a character."""
    return text.encode()[:limit].decode("utf-8", errors="ignore").encode()


def due_at(headers: RecordHeaders) -> datetime | None:
    """When a retry-tier record may be attempted again (None: now)."""
    return headers.time_ms(constants.HEADER_DUE_AT)
