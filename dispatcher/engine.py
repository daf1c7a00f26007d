"""The delivery engine: attempt one job for one stream and route the outcome.

Success is logged (and widens a stream narrowed while its endpoint did not answer, see
:mod:`dispatcher.slots`); a retryable failure goes to the next retry tier (or the dead-letter
topic once the schedule is exhausted); a permanent failure goes to the dead-letter topic; a 410
dead-letters and disables the stream. Every attempt is written to the delivery log. The job
counts as finished (its offset may be committed) only once its next home has acknowledged
it, so a crash can repeat an attempt but never lose one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from dispatcher.delivery_log import AttemptStatus, DeliveryLog, attempt_record
from dispatcher.destinations import Delivery, DestinationClient
from dispatcher.jobs import Job
from dispatcher.kafka_io import AsyncProducer
from dispatcher.metrics import DispatcherMetrics
from dispatcher.outcome import Outcome, OutcomeKind
from dispatcher.rendering import RenderCache
from dispatcher.retry_delay import next_delay
from dispatcher.slots import NARROW_AFTER, Slots
from dispatcher.streams import Stream
from producer.config import Settings
from schemas.codec import AvroCodec
from schemas.errors import ContractError

log = structlog.get_logger(__name__)

Disable = Callable[[str, str], Awaitable[None]]


@dataclass
class StreamRuntime:
    """What a dispatcher holds for one enabled stream: its settings, destination client,
    in-flight limit and failure count."""

    stream: Stream
    client: DestinationClient
    slots: Slots
    consecutive_failures: int = 0
    disabling: bool = False
    schedule: list[timedelta] = field(default_factory=list)


class Engine:
    """Attempts jobs and routes their outcomes; shared by stream and tier workers."""

    def __init__(
        self,
        settings: Settings,
        producer: AsyncProducer,
        codec: AvroCodec,
        disable: Disable,
        metrics: DispatcherMetrics,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._producer = producer
        self._renders = RenderCache(codec)
        self._disable = disable
        self.delivery_log = DeliveryLog(
            lambda key, value: producer.produce_nowait(settings.deliveries_topic, value, key)
        )

    def schedule_for(self, stream: Stream) -> list[timedelta]:
        """The stream's retry tiers: its override, else the global schedule."""
        return list(stream.delivery.retry_schedule or self._settings.retry_schedule)

    async def process(
        self, job: Job, runtime: StreamRuntime, *, holding_slot: bool = False
    ) -> None:
        """Attempt the job once and route the outcome. Never raises for delivery failures;
        raises only when Kafka cannot take the job's next home (the offset then stays
        uncommitted and the job is attempted again after a restart)."""
        try:
            rendered = self._renders.render(job.value, job.purpose)
        except ContractError as exc:
            if holding_slot:
                runtime.slots.release()
            await self.dead_letter(job, f"poison record: {exc}", datetime.now(UTC))
            return
        body = rendered.for_stream(job.stream_id)
        if not holding_slot:
            await runtime.slots.acquire()
        try:
            started = time.perf_counter()
            outcome = (await runtime.client.deliver([Delivery(job, body)]))[0]
            duration_ms = (time.perf_counter() - started) * 1000
        finally:
            runtime.slots.release()
        self._metrics.for_stream(job.stream_id).attempt_seconds.observe(duration_ms / 1000)
        await self.route(job, runtime, outcome, duration_ms, rendered.time)

    async def route(
        self,
        job: Job,
        runtime: StreamRuntime,
        outcome: Outcome,
        duration_ms: float,
        event_time: datetime | None = None,
    ) -> None:
        """Send the job where its outcome says, and log the attempt."""
        now = datetime.now(UTC)
        if outcome.kind is OutcomeKind.SUCCESS:
            runtime.consecutive_failures = 0
            if runtime.slots.widen():
                log.info(
                    "endpoint_answering", stream_id=job.stream_id, in_flight=runtime.slots.limit
                )
            self._log_attempt(job, "success", outcome, duration_ms, now, None, event_time)
            metrics = self._metrics.for_stream(job.stream_id)
            metrics.succeeded.inc()
            if event_time is not None and job.purpose is None:
                lag = (now - event_time).total_seconds()
                metrics.end_to_end_seconds.observe(max(lag, 0.0))
            return
        bound = log.bind(stream_id=job.stream_id, event_id=job.event_id, attempt=job.attempts + 1)
        failed = job.failed(outcome.error, outcome.http_status, now)
        runtime.consecutive_failures += 1
        unanswered = outcome.kind is OutcomeKind.RETRYABLE and outcome.http_status is None
        if unanswered and runtime.consecutive_failures >= NARROW_AFTER and runtime.slots.narrow():
            log.warning(
                "endpoint_not_answering",
                stream_id=job.stream_id,
                consecutive_failures=runtime.consecutive_failures,
                in_flight=1,
                error=outcome.error,
            )
        next_at: datetime | None = None
        if outcome.kind is OutcomeKind.RETRYABLE:
            plan = next_delay(runtime.schedule, failed.attempts, outcome)
            if plan is not None:
                next_at = now + plan.not_before
                await self._producer.produce(
                    self._settings.retry_topic(plan.delay),
                    failed.value,
                    failed.key,
                    failed.headers(now, due_at=next_at),
                )
                bound.info("delivery_retrying", error=outcome.error, next_attempt_at=next_at)
            else:
                await self.dead_letter(failed, f"retries exhausted: {outcome.error}", now)
        elif outcome.kind is OutcomeKind.GONE:
            await self.dead_letter(failed, "destination gone (HTTP 410)", now)
            await self._auto_disable(runtime, "the destination answered 410 Gone")
        else:
            await self.dead_letter(failed, f"permanent failure: {outcome.error}", now)
        status: AttemptStatus = "retrying" if next_at else "failed"
        self._metrics.deliveries.labels(job.stream_id, status).inc()
        self._log_attempt(
            failed, status, outcome, duration_ms, now, next_at, event_time, attempt=failed.attempts
        )
        limit = runtime.stream.delivery.auto_disable_after
        if runtime.consecutive_failures >= limit:
            await self._auto_disable(runtime, f"{limit} consecutive failed deliveries")

    async def dead_letter(self, job: Job, reason: str, at: datetime) -> None:
        """Produce the job to the dead-letter topic with its reason, and wait for the ack."""
        log.warning(
            "dead_lettered",
            stream_id=job.stream_id,
            event_id=job.event_id,
            attempts=job.attempts,
            reason=reason,
        )
        await self._producer.produce(
            self._settings.dlq_topic, job.value, job.key, job.headers(at, reason=reason)
        )
        self._metrics.dead_letters.labels(job.stream_id or "-").inc()

    async def requeue(self, job: Job, delay: timedelta) -> None:
        """Put a job back into the tier of ``delay`` unchanged (stream paused meanwhile)."""
        now = datetime.now(UTC)
        await self._producer.produce(
            self._settings.retry_topic(delay),
            job.value,
            job.key,
            job.headers(now, due_at=now + delay),
        )

    async def _auto_disable(self, runtime: StreamRuntime, reason: str) -> None:
        if runtime.disabling:
            return
        runtime.disabling = True
        log.warning("stream_auto_disabled", stream_id=runtime.stream.id, reason=reason)
        await self._disable(runtime.stream.id, reason)

    def _log_attempt(
        self,
        job: Job,
        status: AttemptStatus,
        outcome: Outcome,
        duration_ms: float,
        at: datetime,
        next_at: datetime | None,
        event_time: datetime | None,
        *,
        attempt: int | None = None,
    ) -> None:
        record = attempt_record(
            stream_id=job.stream_id,
            event_id=job.event_id,
            event_type=job.event_type,
            attempt=attempt if attempt is not None else job.attempts + 1,
            status=status,
            http_status=outcome.http_status,
            error=outcome.error,
            duration_ms=round(duration_ms, 3),
            at=at,
            next_attempt_at=next_at,
            event_time=event_time,
            purpose=job.purpose,
            origin_topic=job.origin_topic or None,
            origin_partition=job.origin_partition if job.origin_partition >= 0 else None,
            origin_offset=job.origin_offset if job.origin_offset >= 0 else None,
        )
        self.delivery_log.add(job.stream_id, record)
