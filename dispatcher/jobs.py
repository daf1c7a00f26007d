"""A delivery job: one event for one stream, read from the lifecycle topic or a retry tier,
and how its Kafka headers carry it between tiers and into the dead-letter topic."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from confluent_kafka import Message

from schemas import constants


def _ms(value: datetime) -> bytes:
    return str(int(value.timestamp() * 1000)).encode()


def _from_ms(value: bytes | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def header_map(message: Message) -> dict[str, bytes]:
    """A record's headers as a dict (the last value wins)."""
    headers: dict[str, bytes] = {}
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    for key, value in pairs:
        headers[key] = value.encode() if isinstance(value, str) else (value or b"")
    return headers


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
    def from_lifecycle(cls, stream_id: str, message: Message, headers: dict[str, bytes]) -> Job:
        """A first attempt for a record of the lifecycle topic."""
        purpose = headers.get(constants.HEADER_PURPOSE)
        return cls(
            stream_id=stream_id,
            event_id=headers.get(constants.HEADER_EVENT_ID, b"").decode(errors="replace"),
            event_type=headers.get(constants.HEADER_EVENT_TYPE, b"").decode(errors="replace"),
            value=message.value() or b"",
            key=message.key(),
            origin_topic=message.topic() or "",
            origin_partition=message.partition() or 0,
            origin_offset=message.offset() or 0,
            purpose=purpose.decode(errors="replace") if purpose else None,
        )

    @classmethod
    def from_retry(cls, message: Message, headers: dict[str, bytes]) -> Job:
        """A job read back from a retry tier (or a dead letter being replayed)."""
        status = headers.get(constants.HEADER_LAST_HTTP_STATUS)
        purpose = headers.get(constants.HEADER_PURPOSE)
        return cls(
            stream_id=headers.get(constants.HEADER_STREAM_ID, b"").decode(),
            event_id=headers.get(constants.HEADER_EVENT_ID, b"").decode(errors="replace"),
            event_type=headers.get(constants.HEADER_EVENT_TYPE, b"").decode(errors="replace"),
            value=message.value() or b"",
            key=message.key(),
            attempts=int(headers.get(constants.HEADER_ATTEMPT, b"0") or 0),
            origin_topic=headers.get(constants.HEADER_ORIGINAL_TOPIC, b"").decode(),
            origin_partition=int(headers.get(constants.HEADER_ORIGINAL_PARTITION, b"-1")),
            origin_offset=int(headers.get(constants.HEADER_ORIGINAL_OFFSET, b"-1")),
            first_failure_at=_from_ms(headers.get(constants.HEADER_FIRST_FAILURE_AT)),
            last_error=headers.get(constants.HEADER_LAST_ERROR, b"").decode() or None,
            last_http_status=int(status) if status else None,
            purpose=purpose.decode() if purpose else None,
        )

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
    def unreadable(cls, message: Message) -> Job:
        """A record whose headers cannot be read: kept whole for the dead-letter topic."""
        headers = header_map(message)
        stream_id = headers.get(constants.HEADER_STREAM_ID, b"").decode(errors="replace")
        return replace(cls.from_lifecycle(stream_id, message, headers), purpose=None)

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
            (constants.HEADER_LAST_FAILURE_AT, _ms(at)),
        ]
        if self.first_failure_at is not None:
            headers.append((constants.HEADER_FIRST_FAILURE_AT, _ms(self.first_failure_at)))
        if self.last_error:
            headers.append((constants.HEADER_LAST_ERROR, self.last_error.encode()[:1024]))
        if self.last_http_status is not None:
            headers.append((constants.HEADER_LAST_HTTP_STATUS, str(self.last_http_status).encode()))
        if self.purpose:
            headers.append((constants.HEADER_PURPOSE, self.purpose.encode()))
        if due_at is not None:
            headers.append((constants.HEADER_DUE_AT, _ms(due_at)))
        if reason is not None:
            headers.append((constants.HEADER_DLQ_REASON, reason.encode()[:1024]))
        return headers


def due_at(headers: dict[str, bytes]) -> datetime | None:
    """When a retry-tier record may be attempted again."""
    return _from_ms(headers.get(constants.HEADER_DUE_AT))
