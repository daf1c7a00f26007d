"""What the history store holds and answers, independent of the database: an event's
attempts for one stream and its dead letter, the filters of a history query, and the compact
form an attempt takes inside a row. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import orjson

from dispatcher.delivery_log import MAX_RESPONSE_BODY, AttemptRecord, AttemptStatus

#: Statuses as stored (a small integer sorts and indexes better than text).
STATUS_CODES: Final[dict[AttemptStatus, int]] = {"success": 0, "retrying": 1, "failed": 2}
STATUSES: Final[tuple[AttemptStatus, ...]] = ("success", "retrying", "failed")


def micros(at: datetime) -> int:
    """Microseconds since the epoch (the stored form of every time)."""
    return round(at.timestamp() * 1_000_000)


def from_micros(value: int) -> datetime:
    """The time a stored value stands for."""
    return datetime.fromtimestamp(value / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class Coordinates:
    """Where a record lies in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event's latest record in the dead-letter topic."""

    at: datetime
    reason: str | None
    where: Coordinates
    #: The last attempt's HTTP status, as the dead letter's headers carry it: the summary's
    #: until the attempt itself arrives from the delivery log (or after it expired there).
    http_status: int | None = None


@dataclass(slots=True)
class EventHistory:
    """One event's attempts for one stream, in time order, and its dead letter if any."""

    stream_id: str
    event_id: str
    event_type: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    dead_letter: DeadLetter | None = None

    @property
    def latest(self) -> AttemptRecord | None:
        """The most recent attempt."""
        return self.attempts[-1] if self.attempts else None

    @property
    def status(self) -> AttemptStatus:
        """The latest attempt's status; an event known only from the DLQ has failed."""
        latest = self.latest
        return latest.status if latest is not None else "failed"

    @property
    def first_at(self) -> datetime:
        """When delivery of the event began (the sort and filter time)."""
        if self.attempts:
            return self.attempts[0].at
        assert self.dead_letter is not None
        return self.dead_letter.at

    @property
    def last_at(self) -> datetime:
        """The latest attempt (or dead-lettering) time."""
        latest = self.latest
        return latest.at if latest is not None else self.first_at

    @property
    def origin(self) -> Coordinates | None:
        """Where the event itself lies in the lifecycle topic, if an attempt recorded it."""
        for record in reversed(self.attempts):
            if (
                record.origin_topic
                and record.origin_partition is not None
                and record.origin_offset is not None
            ):
                return Coordinates(
                    record.origin_topic, record.origin_partition, record.origin_offset
                )
        return None

    @property
    def purpose(self) -> str | None:
        """``test`` for test events."""
        return next((r.purpose for r in self.attempts if r.purpose), None)


@dataclass(frozen=True)
class HistoryFilter:
    """Which events to select: latest status, type patterns, first attempt in a window."""

    statuses: frozenset[AttemptStatus] | None = None
    event_types: Sequence[str] | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None


# An attempt inside a row: a JSON array of its own fields (what the event's row does not
# already say), trailing nulls dropped, one per line. A success is ~40 bytes this way.
def encode_attempt(record: AttemptRecord) -> str:
    """One attempt's line (with its newline), as stored in the event's row."""
    body = record.response_body
    if body is not None and record.status == "success":
        body = None
    fields: list[object] = [
        record.attempt,
        STATUS_CODES[record.status],
        micros(record.at),
        record.http_status,
        record.duration_ms,
        record.error,
        micros(record.next_attempt_at) if record.next_attempt_at else None,
        body[:MAX_RESPONSE_BODY] if body is not None else None,
    ]
    while fields and fields[-1] is None:
        fields.pop()
    return orjson.dumps(fields).decode() + "\n"


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What an event's row says of all its attempts."""

    stream_id: str
    event_id: str
    event_type: str
    event_time: datetime | None
    purpose: str | None
    origin: Coordinates | None


def decode_attempts(lines: str, facts: EventFacts) -> list[AttemptRecord]:
    """The attempts of an event's row, in time order (records of two dispatchers may
    interleave, so the stored order is not trusted)."""
    records = []
    for line in lines.splitlines():
        if not line:
            continue
        values = orjson.loads(line)
        values += [None] * (8 - len(values))
        n, status, at, http_status, duration_ms, error, next_at, body = values
        origin = facts.origin
        records.append(
            AttemptRecord.model_construct(
                stream_id=facts.stream_id,
                event_id=facts.event_id,
                event_type=facts.event_type,
                attempt=n,
                status=STATUSES[status],
                http_status=http_status,
                error=error,
                duration_ms=duration_ms if duration_ms is not None else 0.0,
                at=from_micros(at),
                next_attempt_at=from_micros(next_at) if next_at is not None else None,
                event_time=facts.event_time,
                purpose=facts.purpose,
                origin_topic=origin.topic if origin else None,
                origin_partition=origin.partition if origin else None,
                origin_offset=origin.offset if origin else None,
                response_body=body,
            )
        )
    records.sort(key=lambda r: (r.at, r.attempt))
    return records
