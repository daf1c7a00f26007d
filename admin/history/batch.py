"""One write of the history store: the records of one fetch from Kafka, folded into the rows
they change. Pure.

Attempts of one event within the fetch become one row update, attempts in the same second
or minute one counter update each, and the offsets after the last record of each partition
are written with them, so the write is all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from admin.dlq import marked_record
from admin.history.model import STATUS_CODES, Coordinates, DeadLetter, encode_attempt, micros
from dispatcher.delivery_log import AttemptRecord
from schemas import constants
from schemas.record_headers import RecordHeaders

Partition = tuple[str, int]


@dataclass(slots=True)
class EventUpdate:
    """What a fetch adds to one event's row."""

    stream_id: str
    event_id: str
    event_type: str
    first_at: int
    last_at: int
    last_n: int
    status: int
    lines: str
    event_time: int | None = None
    purpose: str | None = None
    origin: Coordinates | None = None

    def add(self, record: AttemptRecord) -> None:
        """Fold a later-read attempt of the same event in."""
        at = micros(record.at)
        self.first_at = min(self.first_at, at)
        origin = _origin(record)
        if (at, record.attempt) >= (self.last_at, self.last_n):
            self.last_at, self.last_n = at, record.attempt
            self.status = STATUS_CODES[record.status]
            self.origin = origin or self.origin
        else:
            self.origin = self.origin or origin
        self.lines += encode_attempt(record)
        self.event_type = record.event_type
        self.event_time = _micros_or(record.event_time, self.event_time)
        self.purpose = record.purpose or self.purpose


def _micros_or(at: datetime | None, default: int | None) -> int | None:
    return micros(at) if at is not None else default


def _origin(record: AttemptRecord) -> Coordinates | None:
    topic, part, offset = record.origin_topic, record.origin_partition, record.origin_offset
    if topic and part is not None and offset is not None:
        return Coordinates(topic, part, offset)
    return None


def _update(record: AttemptRecord) -> EventUpdate:
    at = micros(record.at)
    return EventUpdate(
        stream_id=record.stream_id,
        event_id=record.event_id,
        event_type=record.event_type,
        first_at=at,
        last_at=at,
        last_n=record.attempt,
        status=STATUS_CODES[record.status],
        lines=encode_attempt(record),
        event_time=_micros_or(record.event_time, None),
        purpose=record.purpose,
        origin=_origin(record),
    )


@dataclass(frozen=True, slots=True)
class LetterAdded:
    """An event's record in the dead-letter topic."""

    stream_id: str
    event_id: str
    event_type: str
    letter: DeadLetter


@dataclass(frozen=True, slots=True)
class LetterPurged:
    """A purge marker: the dead letter at ``where`` is gone."""

    where: Coordinates


@dataclass
class Batch:
    """The rows one fetch changes, and the offsets to record with them."""

    events: dict[tuple[str, str], EventUpdate] = field(default_factory=dict)
    #: Dead-letter changes in the order read (a purge must follow the letter it names).
    letters: list[LetterAdded | LetterPurged] = field(default_factory=list)
    #: (stream, second or minute start) -> attempts by status code.
    seconds: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    minutes: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    #: The next offset to read per partition, after this batch.
    offsets: dict[Partition, int] = field(default_factory=dict)
    attempts: int = 0

    def add_attempt(self, record: AttemptRecord) -> None:
        """One line of the delivery log."""
        key = (record.stream_id, record.event_id)
        update = self.events.get(key)
        if update is None:
            self.events[key] = _update(record)
        else:
            update.add(record)
        second = int(record.at.timestamp())
        code = STATUS_CODES[record.status]
        for counters, at in ((self.seconds, second), (self.minutes, second - second % 60)):
            slot = counters.get((record.stream_id, at))
            if slot is None:
                slot = counters[(record.stream_id, at)] = [0, 0, 0]
            slot[code] += 1
        self.attempts += 1

    def read(self, topic: str, partition: int, offset: int) -> None:
        """A record at ``offset`` was read (whatever it held)."""
        self.offsets[(topic, partition)] = offset + 1

    def __bool__(self) -> bool:
        return bool(self.offsets)


def letter_change(
    where: Coordinates, headers: RecordHeaders, timestamp_ms: int
) -> LetterAdded | LetterPurged | None:
    """What a dead-letter topic's record at ``where`` says: a letter, a purge marker, or
    nothing the history keeps (no stream or event id). Headers are read tolerantly: anyone
    may write to the topic."""
    if constants.HEADER_PURGED in headers:
        named = marked_record(headers)
        return LetterPurged(Coordinates(where.topic, *named)) if named is not None else None
    stream_id = headers.text(constants.HEADER_STREAM_ID)
    event_id = headers.text(constants.HEADER_EVENT_ID)
    if not stream_id or not event_id:
        return None
    at = headers.time_ms(constants.HEADER_LAST_FAILURE_AT) or datetime.fromtimestamp(
        max(timestamp_ms, 0) / 1000, UTC
    )
    status = headers.integer(constants.HEADER_LAST_HTTP_STATUS)
    letter = DeadLetter(
        at=at,
        reason=headers.optional_text(constants.HEADER_DLQ_REASON),
        http_status=status if status is not None and 100 <= status <= 999 else None,
        where=where,
    )
    return LetterAdded(stream_id, event_id, headers.text(constants.HEADER_EVENT_TYPE), letter)
