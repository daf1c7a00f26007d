"""The delivery history index: every attempt record of ``tidings.deliveries`` and every
dead letter of ``tidings.dlq``, grouped by stream and event. Pure: fed by the view, queried
by the routes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dispatcher.delivery_log import AttemptRecord, AttemptStatus
from dispatcher.subscriptions import matches


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

    def add(self, record: AttemptRecord) -> None:
        """Insert an attempt in time order (records of two dispatchers may interleave)."""
        self.attempts.append(record)
        if len(self.attempts) > 1 and (record.at, record.attempt) < (
            self.attempts[-2].at,
            self.attempts[-2].attempt,
        ):
            self.attempts.sort(key=lambda r: (r.at, r.attempt))

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

    def __call__(self, event: EventHistory) -> bool:
        """Whether ``event`` is selected."""
        if self.statuses is not None and event.status not in self.statuses:
            return False
        if self.event_types is not None and not matches(self.event_types, event.event_type):
            return False
        if self.date_from is not None and event.first_at < self.date_from:
            return False
        return self.date_to is None or event.first_at < self.date_to


class DeliveryIndex:
    """Attempts and dead letters by stream id, then event id."""

    def __init__(self) -> None:
        self._streams: dict[str, dict[str, EventHistory]] = {}
        self._letters: dict[Coordinates, EventHistory] = {}

    def _event(self, stream_id: str, event_id: str, event_type: str) -> EventHistory:
        events = self._streams.setdefault(stream_id, {})
        event = events.get(event_id)
        if event is None:
            event = events[event_id] = EventHistory(stream_id, event_id, event_type)
        return event

    def add_attempt(self, record: AttemptRecord) -> None:
        """Record one attempt."""
        self._event(record.stream_id, record.event_id, record.event_type).add(record)

    def add_dead_letter(
        self, stream_id: str, event_id: str, event_type: str, letter: DeadLetter
    ) -> None:
        """Record that the event was dead-lettered (the latest letter wins)."""
        event = self._event(stream_id, event_id, event_type)
        if event.dead_letter is None or event.dead_letter.at <= letter.at:
            event.dead_letter = letter
            self._letters[letter.where] = event

    def purge_dead_letter(self, where: Coordinates) -> None:
        """A purge marker (``tidings dlq purge``) removed the dead letter at ``where``: an
        event known only from it disappears; otherwise only its dead letter is forgotten."""
        event = self._letters.pop(where, None)
        if event is None or event.dead_letter is None or event.dead_letter.where != where:
            return
        event.dead_letter = None
        if not event.attempts:
            self._streams.get(event.stream_id, {}).pop(event.event_id, None)

    def get(self, stream_id: str, event_id: str) -> EventHistory | None:
        """One event's history for one stream."""
        return self._streams.get(stream_id, {}).get(event_id)

    def events(self, stream_id: str, selected: HistoryFilter | None = None) -> list[EventHistory]:
        """The stream's events that ``selected`` picks (all without a filter)."""
        events = self._streams.get(stream_id, {}).values()
        return [e for e in events if selected is None or selected(e)]

    def attempts(self, stream_id: str, start: datetime, end: datetime) -> Iterator[AttemptRecord]:
        """The stream's attempts made in ``[start, end)``."""
        for event in self._streams.get(stream_id, {}).values():
            for record in event.attempts:
                if start <= record.at < end:
                    yield record
