"""Manual redelivery and test events: an ordinary enqueue into the first retry tier.

A redelivered event is read back from where Kafka still holds it (its dead-letter record,
which keeps the original bytes for the DLQ's longer retention, else the lifecycle record
its attempts point at) and produced to the first retry tier, addressed to one stream, as a
fresh job (attempt 0) due now. The dispatcher's tier consumer then delivers it through the
normal path: live traffic never waits for a replay, and a failing replay climbs the tiers
and may end in the DLQ again like any other delivery.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog
from confluent_kafka import Message, TopicPartition

from admin.api.view import assigning_consumer
from admin.history.model import Coordinates, EventHistory
from dispatcher.jobs import Job
from dispatcher.kafka_io import AsyncProducer
from dispatcher.rendering import Rendered
from producer.config import Settings
from producer.producer import codec_for
from schemas import constants
from schemas.errors import ContractError
from schemas.fast_render import render_record_json
from schemas.record_headers import RecordHeaders

log = structlog.get_logger(__name__)

#: How long to wait for one record once its partition is assigned.
FETCH_TIMEOUT = 5.0


class Requeuer:
    """Reads records by coordinates and enqueues jobs into the first retry tier."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = AsyncProducer(
            settings.kafka_config(**{"message.max.bytes": settings.max_record_bytes})
        )
        self._consumer = assigning_consumer(settings, "admin-fetch")
        self._codec = codec_for(settings)
        self._closed = False

    @property
    def first_tier(self) -> str:
        """The topic redeliveries and test events go to."""
        return self._settings.retry_topic(self._settings.retry_schedule[0])

    async def enqueue(self, job: Job) -> None:
        """Produce ``job`` to the first retry tier, due now, and wait for the ack."""
        now = datetime.now(UTC)
        await self._producer.produce(
            self.first_tier, job.value, job.key, job.headers(now, due_at=now)
        )
        log.info(
            "enqueued",
            stream_id=job.stream_id,
            event_id=job.event_id,
            purpose=job.purpose,
            topic=self.first_tier,
        )

    async def redeliver(self, events: list[EventHistory]) -> list[EventHistory]:
        """Enqueue each event for its stream; return those Kafka no longer holds."""
        dead = {e.dead_letter.where: e for e in events if e.dead_letter is not None}
        found = await self._fetch(list(dead))
        jobs: list[Job] = []
        missing: list[EventHistory] = []
        for where, event in dead.items():
            job = _job_from_dead_letter(event, found.get(where))
            if job is not None:
                jobs.append(job)
            else:
                missing.append(event)
        missing += [e for e in events if e.dead_letter is None]
        origins = {e.origin: e for e in missing if e.origin is not None}
        found = await self._fetch([o for o in origins if o is not None])
        expired = [e for e in missing if e.origin is None]
        for where, event in origins.items():
            assert where is not None
            job = _job_from_lifecycle(event, found.get(where))
            if job is not None:
                jobs.append(job)
            else:
                expired.append(event)
        for job in jobs:
            await self.enqueue(job)
        return expired

    async def delivered_body(self, event: EventHistory) -> bytes | None:
        """The event's JSON as delivered to its stream, read back from the lifecycle topic
        (or its dead letter) while Kafka retains it; None once neither is retained."""
        letter = event.dead_letter.where if event.dead_letter is not None else None
        wanted = [w for w in (event.origin, letter) if w is not None]
        found = await self._fetch(wanted)
        for where in wanted:
            message = found.get(where)
            if message is None:
                continue
            try:
                record = self._codec.decode_record(message.value() or b"")
            except ContractError:
                continue
            body = render_record_json(record, purpose=event.purpose)
            rendered = Rendered(body, record["time"], str(record["id"]), str(record["type"]))
            return rendered.for_stream(event.stream_id)
        return None

    async def _fetch(self, wanted: list[Coordinates]) -> dict[Coordinates, Message]:
        if not wanted:
            return {}
        found: dict[Coordinates, Message] = await self._consumer.call(self._fetch_sync, wanted)
        return found

    def _fetch_sync(self, wanted: list[Coordinates]) -> dict[Coordinates, Message]:
        """Read each record by assign+seek; skip those below the low watermark (expired by
        retention) or not yet written. Runs on the consumer's own thread."""
        consumer = self._consumer.consumer
        found: dict[Coordinates, Message] = {}
        marks: dict[tuple[str, int], tuple[int, int]] = {}
        for where in sorted(set(wanted), key=lambda w: (w.topic, w.partition, w.offset)):
            tp = (where.topic, where.partition)
            if tp not in marks:
                marks[tp] = consumer.get_watermark_offsets(
                    TopicPartition(*tp), timeout=FETCH_TIMEOUT, cached=False
                )
            low, high = marks[tp]
            if not low <= where.offset < high:
                continue
            consumer.assign([TopicPartition(where.topic, where.partition, where.offset)])
            deadline = time.monotonic() + FETCH_TIMEOUT
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                if (message.offset() or 0) >= where.offset:
                    if message.offset() == where.offset:
                        found[where] = message
                    break
        if marks:
            consumer.unassign()
        return found

    async def close(self) -> None:
        """Flush the producer and close the consumer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._producer.close, 10)
        await self._consumer.close()


def _job_from_dead_letter(event: EventHistory, message: Message | None) -> Job | None:
    """A fresh job from the event's dead-letter record (same bytes, purpose and origin)."""
    if message is None:
        return None
    job = Job.from_retry(message, RecordHeaders.of(message))
    if job.stream_id != event.stream_id or job.event_id != event.event_id:
        return None
    return job.fresh()


def _job_from_lifecycle(event: EventHistory, message: Message | None) -> Job | None:
    """A fresh job from the event's lifecycle record."""
    if message is None:
        return None
    headers = RecordHeaders.of(message)
    if headers.text(constants.HEADER_EVENT_ID) != event.event_id:
        return None
    return Job.from_lifecycle(event.stream_id, message, headers)
