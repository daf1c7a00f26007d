"""The delivery engine: the life of one job (one event for one stream), from its record to
exactly one end.

A job passes three stages, each of which turns whatever happens, expected or not, into the
next step rather than an exception:

1. **render** the record into the CloudEvents JSON. A record that does not decode, or whose
   headers disagree with its body, can never succeed: it is dead-lettered. A decoded type the
   stream does not subscribe to is skipped.
2. **send** it to the destination, in one of the stream's delivery slots. The destination
   reports an :class:`~dispatcher.outcome.Outcome`; an exception from building the request or
   from the client becomes a retryable outcome (it may be transient).
3. **hand off**: a success is finished; a retryable failure goes to the retry tier its plan
   names (or the dead-letter topic once the schedule is exhausted); anything else goes to the
   dead-letter topic, with its reason. A tier that cannot take the record sends it to the
   dead-letter topic instead, and the dead-letter topic is retried with back-off until it
   acknowledges: a job never ends without its next home holding it. A job of a stream
   ordered per subject (``in_order``) retries in place instead: it waits for its next attempt
   where it is, holding back its subject's later events (:mod:`dispatcher.subject_order`).

Its :class:`End` says where it ended. Bookkeeping around it (delivery log, metrics, widening
or narrowing the stream, auto-disable after 410 or too many failures) never changes the end:
a failure there is logged and the job still ends. The job counts as finished (its offset
may be committed) only once it has ended, so a crash can repeat an attempt but never lose one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog
from confluent_kafka import KafkaError, KafkaException

from dispatcher.delivery_log import AttemptStatus, DeliveryLog, attempt_record
from dispatcher.destinations import Delivery, DestinationClient
from dispatcher.jobs import Job
from dispatcher.kafka_io import AsyncProducer
from dispatcher.metrics import DispatcherMetrics
from dispatcher.outcome import Outcome, OutcomeKind
from dispatcher.rendering import RenderCache, Rendered
from dispatcher.retry_delay import next_delay
from dispatcher.slots import NARROW_AFTER, Slots
from dispatcher.streams import Stream
from dispatcher.subscriptions import SubscriptionFilter
from producer.config import Settings
from schemas.codec import AvroCodec
from schemas.errors import ContractError

log = structlog.get_logger(__name__)

Disable = Callable[[str, str], Awaitable[None]]


class InOrder(Protocol):
    """The line of an ordered stream's subject a job belongs to (see
    :mod:`dispatcher.subject_order`): a failed job waits here for its next attempt instead of
    going to a retry tier, holding back its subject's later events."""

    async def wait(self, job: Job, due: datetime) -> None:
        """Wait until ``due`` (raises CancelledError when the worker stops first)."""

    @property
    def runtime(self) -> StreamRuntime:
        """The stream as it is now (it may have changed while the job waited)."""


#: Appended to the reason of an ordered stream's dead letter: its subject moves on without it.
ORDER_BROKEN = "; ordering: this subject's later events are delivered after it"


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
    wants: SubscriptionFilter = field(init=False)

    def __post_init__(self) -> None:
        self.wants = SubscriptionFilter(self.stream.event_types)


class End(StrEnum):
    """Where a job ended: exactly one of these, on every path."""

    #: The destination accepted it.
    DELIVERED = "delivered"
    #: A retry tier acknowledged it (never a job of an ordered stream: it retries in place).
    RETRYING = "retrying"
    #: The dead-letter topic acknowledged it, with its reason.
    DEAD_LETTERED = "dead_lettered"
    #: Not for this stream: its decoded type is not subscribed, or its stream was deleted.
    SKIPPED = "skipped"


#: Back-off of a dead-letter write the broker did not acknowledge: from the first, doubling.
DEAD_LETTER_BACKOFF = (0.5, 30.0)
#: Errors that a record can never get past, whatever the retries: the dead letter is then
#: written without the event's bytes (its origin coordinates still name it).
_TOO_LARGE = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
    }
)


def _too_large(exc: BaseException) -> bool:
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and error.code() in _TOO_LARGE


def identity_mismatch(job: Job, rendered: Rendered) -> str | None:
    """Why a record's headers contradict its body (None when they agree or are absent)."""
    if job.event_type and job.event_type != rendered.event_type:
        return f"type header {job.event_type!r} disagrees with the event's type"
    if job.event_id and job.event_id != rendered.event_id:
        return f"id header {job.event_id!r} disagrees with the event's id"
    return None


class Engine:
    """Runs jobs to their end; shared by stream and tier workers."""

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
        self,
        job: Job,
        runtime: StreamRuntime,
        *,
        holding_slot: bool = False,
        in_order: InOrder | None = None,
    ) -> End:
        """Run one job to its end: render, send, hand off. Never raises (but for
        cancellation); the slot it holds or takes is always given back. A job ``in_order``
        retries in place (it never ends RETRYING) and its dead letter says the order broke."""
        held = holding_slot
        try:
            # 1. render
            rendered, unusable = self._render(job)
            if rendered is not None and not (job.event_id and job.event_type):
                # Headers that are missing take the event's own values.
                job = job.identified(
                    job.event_id or rendered.event_id, job.event_type or rendered.event_type
                )
            if unusable is not None:
                if held:
                    runtime.slots.release()
                    held = False
                reason = unusable + (ORDER_BROKEN if in_order else "")
                return await self.dead_letter(job, reason, datetime.now(UTC))
            assert rendered is not None
            if job.purpose is None and not runtime.wants(job.event_type):
                return End.SKIPPED  # a record without a type header, now decoded
            # 2. send
            if not held:
                await runtime.slots.acquire()
                held = True
            started = time.perf_counter()
            outcome = await self._send(job, runtime, rendered)
            duration_ms = (time.perf_counter() - started) * 1000
            runtime.slots.release()
            held = False
            # 3. hand off
            return await self.route(
                job, runtime, outcome, duration_ms, rendered.time, in_order=in_order
            )
        finally:
            if held:
                runtime.slots.release()

    def _render(self, job: Job) -> tuple[Rendered | None, str | None]:
        """The rendered event, and why the record can never be delivered (None if it can)."""
        try:
            rendered = self._renders.render(job.value, job.purpose)
        except ContractError as exc:
            return None, f"poison record: {exc}"
        except Exception as exc:
            log.exception("render_failed", stream_id=job.stream_id, event_id=job.event_id)
            return None, f"render failed: {type(exc).__name__}: {exc}"
        mismatch = identity_mismatch(job, rendered)
        return rendered, None if mismatch is None else f"poison record: {mismatch}"

    async def _send(self, job: Job, runtime: StreamRuntime, rendered: Rendered) -> Outcome:
        """One attempt at the destination; an exception from the client is an outcome too."""
        delivery = Delivery(job, rendered.for_stream(job.stream_id))
        try:
            return (await runtime.client.deliver([delivery]))[0]
        except Exception as exc:
            log.exception("send_failed", stream_id=job.stream_id, event_id=job.event_id)
            error = f"internal error: {type(exc).__name__}: {exc}"
            return Outcome(OutcomeKind.RETRYABLE, None, error, None)

    async def route(
        self,
        job: Job,
        runtime: StreamRuntime,
        outcome: Outcome,
        duration_ms: float,
        event_time: datetime | None = None,
        *,
        in_order: InOrder | None = None,
    ) -> End:
        """Hand the job to where its outcome says, then do the bookkeeping of the attempt.

        A job ``in_order`` whose retry is planned waits in place and is attempted again."""
        now = datetime.now(UTC)
        note = ORDER_BROKEN if in_order else ""
        if outcome.kind is OutcomeKind.SUCCESS:
            self._bookkeep(self._succeeded, job, runtime, outcome, duration_ms, now, event_time)
            return End.DELIVERED
        failed = job.failed(outcome.error, outcome.http_status, now)
        next_at: datetime | None = None
        end: End | None = None  # None: waits in place for its next attempt
        if outcome.kind is OutcomeKind.RETRYABLE:
            try:
                plan = next_delay(runtime.schedule, failed.attempts, outcome)
            except Exception as exc:  # a schedule that cannot be planned with: a bug
                log.exception("retry_plan_failed", stream_id=job.stream_id)
                end = await self.dead_letter(failed, f"internal error: {exc}{note}", now)
            else:
                if plan is None:
                    reason = f"retries exhausted: {outcome.error}{note}"
                    end = await self.dead_letter(failed, reason, now)
                else:
                    next_at = now + plan.delay
                    if in_order is None:
                        end = await self._to_tier(failed, plan.delay, next_at, now)
        elif outcome.kind is OutcomeKind.GONE:
            end = await self.dead_letter(failed, f"destination gone (HTTP 410){note}", now)
        else:
            end = await self.dead_letter(failed, f"permanent failure: {outcome.error}{note}", now)
        if end is not None and end is not End.RETRYING:
            next_at = None
        self._bookkeep(
            self._failed, failed, runtime, outcome, duration_ms, now, event_time, next_at
        )
        if outcome.kind is OutcomeKind.GONE:
            await self._auto_disable(runtime, "the destination answered 410 Gone")
        limit = runtime.stream.delivery.auto_disable_after
        if runtime.consecutive_failures >= limit:
            await self._auto_disable(runtime, f"{limit} consecutive failed deliveries")
        if end is None:
            assert in_order is not None
            assert next_at is not None
            await in_order.wait(failed, next_at)
            return await self.process(failed, in_order.runtime, in_order=in_order)
        return end

    def _bookkeep(self, step: Callable[..., None], *args: object) -> None:
        """Run one bookkeeping step; a failure there is logged and changes no end."""
        try:
            step(*args)
        except Exception:
            log.exception("bookkeeping_failed", step=step.__name__)

    def _succeeded(
        self,
        job: Job,
        runtime: StreamRuntime,
        outcome: Outcome,
        duration_ms: float,
        now: datetime,
        event_time: datetime | None,
    ) -> None:
        runtime.consecutive_failures = 0
        if runtime.slots.widen():
            log.info("endpoint_answering", stream_id=job.stream_id, in_flight=runtime.slots.limit)
        self._log_attempt(job, "success", outcome, duration_ms, now, None, event_time)
        metrics = self._metrics.for_stream(job.stream_id)
        metrics.attempt_seconds.observe(duration_ms / 1000)
        metrics.succeeded.inc()
        if event_time is not None and job.purpose is None:
            metrics.end_to_end_seconds.observe(max((now - event_time).total_seconds(), 0.0))

    def _failed(
        self,
        failed: Job,
        runtime: StreamRuntime,
        outcome: Outcome,
        duration_ms: float,
        now: datetime,
        event_time: datetime | None,
        next_at: datetime | None,
    ) -> None:
        runtime.consecutive_failures += 1
        unanswered = outcome.kind is OutcomeKind.RETRYABLE and outcome.http_status is None
        if unanswered and runtime.consecutive_failures >= NARROW_AFTER and runtime.slots.narrow():
            log.warning(
                "endpoint_not_answering",
                stream_id=failed.stream_id,
                consecutive_failures=runtime.consecutive_failures,
                in_flight=1,
                error=outcome.error,
            )
        if next_at is not None:
            log.info(
                "delivery_retrying",
                stream_id=failed.stream_id,
                event_id=failed.event_id,
                attempt=failed.attempts,
                error=outcome.error,
                next_attempt_at=next_at,
            )
        status: AttemptStatus = "retrying" if next_at else "failed"
        self._metrics.for_stream(failed.stream_id).attempt_seconds.observe(duration_ms / 1000)
        self._metrics.deliveries.labels(failed.stream_id, status).inc()
        self._log_attempt(
            failed, status, outcome, duration_ms, now, next_at, event_time, attempt=failed.attempts
        )

    async def _to_tier(self, job: Job, delay: timedelta, due: datetime, now: datetime) -> End:
        """Hand the job to the retry tier of ``delay``; a tier that does not take it sends it
        to the dead-letter topic instead."""
        topic = self._settings.retry_topic(delay)
        try:
            await self._producer.produce(topic, job.value, job.key, job.headers(now, due_at=due))
        except Exception as exc:
            # A broker's answer, not a bug: its text says all (no traceback, which would cost
            # the event loop milliseconds per record while a tier is unavailable).
            log.error(
                "retry_tier_unavailable", stream_id=job.stream_id, topic=topic, error=repr(exc)
            )
            return await self.dead_letter(job, f"retry tier {topic} did not take it: {exc}", now)
        return End.RETRYING

    async def dead_letter(self, job: Job, reason: str, at: datetime) -> End:
        """Produce the job to the dead-letter topic with its reason and wait for the ack.

        Retried with back-off until the broker acknowledges (the job's offset stays unfinished
        meanwhile, so a stop or crash leaves it to be attempted again). A record the topic can
        never take (too large) is dead-lettered without its bytes: its headers still name the
        event and where it lies in the lifecycle topic."""
        log.warning(
            "dead_lettered",
            stream_id=job.stream_id,
            event_id=job.event_id,
            attempts=job.attempts,
            reason=reason,
        )
        headers = job.headers(at, reason=reason)
        value: bytes | None = job.value
        pause, longest = DEAD_LETTER_BACKOFF
        while True:
            try:
                await self._producer.produce(self._settings.dlq_topic, value, job.key, headers)
                break
            except Exception as exc:
                log.error(
                    "dead_letter_failed",
                    stream_id=job.stream_id,
                    event_id=job.event_id,
                    error=repr(exc),
                    retry_in=pause,
                )
                if _too_large(exc) and value is not None:
                    value = None
                    headers = job.headers(at, reason=f"{reason} (event too large to keep here)")
                    continue
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
        self._bookkeep(self._metrics.dead_letters.labels(job.stream_id or "-").inc)
        return End.DEAD_LETTERED

    def log_parked(self, job: Job) -> None:
        """Mark an ordered stream's event as parked in the delivery history: not attempted,
        waiting behind an earlier event of its subject (bookkeeping)."""
        waiting = Outcome(OutcomeKind.RETRYABLE, None, None, None)

        def log_parked() -> None:
            self._log_attempt(job, "parked", waiting, 0.0, datetime.now(UTC), None, None, attempt=0)

        self._bookkeep(log_parked)

    def gauge_parked(self, stream_id: str, subjects: int, events: int) -> None:
        """Show an ordered stream's parked subjects and events (bookkeeping)."""

        def gauge() -> None:
            self._metrics.parked_subjects.labels(stream_id).set(subjects)
            self._metrics.parked_events.labels(stream_id).set(events)

        self._bookkeep(gauge)

    async def requeue(self, job: Job, delay: timedelta) -> End:
        """Put a job back into the tier of ``delay`` unchanged (stream paused meanwhile)."""
        now = datetime.now(UTC)
        return await self._to_tier(job, delay, now + delay, now)

    async def _auto_disable(self, runtime: StreamRuntime, reason: str) -> None:
        """Disable the stream in the registry (once); a failed write is logged, and tried
        again at the next failure."""
        if runtime.disabling:
            return
        runtime.disabling = True
        log.warning("stream_auto_disabled", stream_id=runtime.stream.id, reason=reason)
        try:
            await self._disable(runtime.stream.id, reason)
        except Exception as exc:
            runtime.disabling = False
            log.error("stream_auto_disable_failed", stream_id=runtime.stream.id, error=repr(exc))

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
            response_body=outcome.response_body,
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
