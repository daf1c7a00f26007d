"""Retry tiers: one topic per delay (``tidings.retry.30s``), shared by every stream.

A tier's consumer never delivers early: when a partition's head record is not yet due, it
pauses that partition, rewinds to the head and resumes when it is due. Records of a tier
all wait the same delay, so each partition is in due order and the head is the next due.
Due records are attempted concurrently; offsets are committed only up to the lowest
unfinished record, so a restart resumes every record still waiting.

The resume timer is rounded up to the tier's grain (a tenth of its delay, at most a second):
records due within one grain are attempted together after one pause/seek/resume cycle,
instead of a cycle per record. Each cycle holds the GIL in librdkafka calls (p99 ~2 ms
measured) and fetches the rewound records again: under a steady trickle of failures (a dead
endpoint) per-record cycles cost the healthy streams' latency. A retry is never early and at
most a grain late.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from confluent_kafka import Consumer, TopicPartition

from dispatcher.engine import End, Engine, StreamRuntime
from dispatcher.jobs import Job, due_at
from dispatcher.kafka_io import AsyncConsumer
from dispatcher.stream_worker import FETCH_BATCH, CommittingWorker
from producer.config import Settings
from producer.durations import format_duration
from schemas import constants
from schemas.ids import is_stream_id
from schemas.record_headers import RecordHeaders

log = structlog.get_logger(__name__)

#: At most this many records fetched from one tier and not yet ended: the memory bound of a
#: tier (about 2 KB each). Attempts themselves are bounded by each stream's slots and the
#: process budget; a record waiting for its stream's slot (a stream narrowed by an endpoint
#: that hangs) holds only this, so other streams' retries pass it until this many wait.
MAX_TIER_HELD = 20_000
#: A tier's grain (see above) is its delay divided by this ...
GRAIN_DIVISOR = 10
#: ... and never coarser than this.
MAX_GRAIN = timedelta(seconds=1)


def resume_after(due: datetime, now: datetime, grain: timedelta) -> float:
    """Seconds until a paused partition whose head is ``due`` resumes: never before it is due,
    rounded up to a whole number of grains."""
    wait = max(0.0, (due - now).total_seconds())
    step = grain.total_seconds()
    return math.ceil(wait / step) * step if step > 0 else wait


class TierWorker(CommittingWorker):
    """Consumes one retry tier and re-attempts its records when due."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        delay: timedelta,
        runtime_of: Callable[[str], StreamRuntime | None],
        is_deleted: Callable[[str], bool],
    ) -> None:
        name = constants.RETRY_TOPIC_PREFIX + format_duration(delay)
        super().__init__(
            settings, engine, group_id=settings.topic(name), topic=settings.retry_topic(delay)
        )
        self.delay = delay
        self.grain = min(delay / GRAIN_DIVISOR, MAX_GRAIN)
        self._runtime_of = runtime_of
        self._is_deleted = is_deleted
        self._paused: set[int] = set()
        self._resuming: set[asyncio.Task[None]] = set()
        self._held = asyncio.Semaphore(MAX_TIER_HELD)

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A fresh assignment is not paused.

        librdkafka keeps a partition paused across a rebalance that gives it back to this
        consumer, while the timer that would resume it does nothing once ``_paused`` forgot
        the partition: without an explicit resume the tier partition would stay stuck."""
        self._paused.difference_update(tp.partition for tp in partitions)
        committed = consumer.committed(partitions, timeout=10)
        self.track(committed)
        consumer.assign(committed)
        consumer.resume(committed)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Forget pauses of lost partitions, then commit what is finished."""
        self._paused.difference_update(tp.partition for tp in partitions)
        super().on_revoke(consumer, partitions)

    async def run(self) -> None:
        """Consume the tier until stop(); then drain and commit."""
        consumer = AsyncConsumer(self.consumer_config(), name=f"tidings-tier-{self.delay}")
        self.consumer = consumer
        consumer.consumer.subscribe(
            [self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke
        )
        committer = asyncio.create_task(self.commit_every_interval())
        try:
            while not self.stopping:
                rewound: set[int] = set()  # partitions rewound while handling this batch
                batch = self.take_early() or await consumer.consume(FETCH_BATCH, 0.2)
                for message in batch:
                    if self.stopping:
                        break  # unhandled records stay uncommitted: the next owner has them
                    if message.error() is not None:
                        log.warning("consume_error", error=str(message.error()))
                        continue
                    await self._handle(message, rewound)
                self.commit()
        finally:
            committer.cancel()
            await self.drain(30.0)
            await consumer.close()

    def _pause_until(self, message: Any, due: datetime) -> None:
        consumer = self.consumer
        assert consumer is not None
        partition = message.partition()
        tp = TopicPartition(self.topic, partition, message.offset())
        consumer.consumer.pause([tp])
        consumer.consumer.seek(tp)
        self._paused.add(partition)
        wait = resume_after(due, datetime.now(UTC), self.grain)
        asyncio.get_running_loop().call_later(wait, self._resume, partition)

    def _resume(self, partition: int) -> None:
        consumer = self.consumer
        if partition not in self._paused or consumer is None:
            return
        self._paused.discard(partition)
        # On the consumer's own thread, after its current fetch: from the event loop the call
        # would hold up every stream's deliveries until that fetch's wait ends.
        task = asyncio.create_task(self._resume_later(consumer, partition))
        self._resuming.add(task)
        task.add_done_callback(self._resuming.discard)

    async def _resume_later(self, consumer: AsyncConsumer, partition: int) -> None:
        with contextlib.suppress(RuntimeError):  # the consumer closed meanwhile
            await consumer.call(self._resume_now, partition)

    def _resume_now(self, partition: int) -> None:
        assert self.consumer is not None
        try:
            self.consumer.consumer.resume([TopicPartition(self.topic, partition)])
        except Exception as exc:
            log.debug("resume_skipped", partition=partition, error=str(exc))

    def paused_partitions(self) -> set[int]:
        """Partitions paused until their head record is due."""
        return set(self._paused)

    async def _handle(self, message: Any, rewound: set[int]) -> None:
        partition, offset = message.partition(), message.offset()
        if partition in self._paused or partition in rewound:
            # Fetched before the rewind: it comes again after it. ``_paused`` alone is not
            # enough: the resume timer can fire while this batch waits for an in-flight slot,
            # and handling the rest of the batch would then skip the rewound record.
            return
        headers = RecordHeaders.of(message)
        job = Job.from_retry(message, headers)
        if not is_stream_id(job.stream_id):
            epoch = self.add(partition, offset)
            if epoch is None:
                return  # revoked meanwhile, or finished before a restart
            self.fetched += 1
            unreadable = Job.unreadable(message)
            reason = "poison retry record: no valid stream id header"
            dead = self.engine.dead_letter(unreadable, reason, datetime.now(UTC))
            self.spawn(unreadable, dead, partition, offset, epoch)
            return
        due = due_at(headers)
        if due is not None and due > datetime.now(UTC):
            self._pause_until(message, due)
            rewound.add(partition)
            return
        if not self._held.locked():
            await self._held.acquire()
        elif not await self.wait_polling(self._held.acquire()):
            return  # stopping: the record stays unfinished for the next owner
        epoch = self.add(partition, offset)
        if epoch is None:  # revoked meanwhile, or finished before a restart
            self._held.release()
            return
        self.fetched += 1
        runtime = self._runtime_of(job.stream_id)
        work = self._orphan(job) if runtime is None else self.engine.process(job, runtime)
        self.spawn(job, self._holding(work), partition, offset, epoch)

    async def _holding(self, work: Awaitable[End]) -> End:
        try:
            return await work
        finally:
            self._held.release()

    async def _orphan(self, job: Job) -> End:
        """A record whose stream does not run here: keep it while the stream is disabled or
        not yet known (a test event can arrive before the registry record), drop it once the
        stream is deleted."""
        if self._is_deleted(job.stream_id):
            log.info("retry_dropped_stream_deleted", stream_id=job.stream_id, event_id=job.event_id)
            return End.SKIPPED
        return await self.engine.requeue(job, self.delay)
