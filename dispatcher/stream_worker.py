"""One stream's consumer of the lifecycle topic, in its own consumer group.

Records whose type the stream does not subscribe to are skipped from the record headers,
without decoding (a record without a type header is decoded and filtered by its own type).
The rest are attempted concurrently (at most ``max_in_flight`` at once); offsets are
committed only up to the lowest record not yet finished, every 200 ms, with the finished
offsets above it in the commit's metadata; a partition's next owner (after a crash or a
rebalance) skips those (``dispatcher.offsets``). Only partitions held are committed, and only
what the broker confirmed counts as committed.
A stream with ``ordering: subject`` attempts one event per subject at a time, in partition
order (:mod:`dispatcher.subject_order`).

While a worker waits for a delivery slot (a stream narrowed to one request in flight by an
endpoint that hangs can wait minutes for a batch), its consumer keeps polling with its
partitions paused, so it never exceeds ``max.poll.interval.ms`` and never leaves its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from dispatcher import subject_order
from dispatcher.engine import End, Engine, StreamRuntime
from dispatcher.jobs import Job
from dispatcher.kafka_io import AsyncConsumer
from dispatcher.offset_metadata import MAX_METADATA_CHARS
from dispatcher.offsets import Commit, OffsetTracker
from dispatcher.subject_order import MAX_WAITING, Subject, SubjectLines
from producer.config import Settings
from schemas import constants
from schemas.record_headers import RecordHeaders

log = structlog.get_logger(__name__)

COMMIT_INTERVAL = 0.2
FETCH_BATCH = 500
#: While waiting for a slot, the consumer polls (partitions paused) at least this often: far
#: inside any sane ``max.poll.interval.ms`` (librdkafka's minimum is 1 s).
POLL_WHILE_WAITING = 0.5


def _topic_partitions(commits: list[Commit]) -> list[TopicPartition]:
    return [TopicPartition(c.topic, c.partition, c.offset, metadata=c.metadata) for c in commits]


class CommittingWorker:
    """The consume → track → commit machinery shared by stream and tier workers."""

    def __init__(self, settings: Settings, engine: Engine, group_id: str, topic: str) -> None:
        self.settings = settings
        self.engine = engine
        self.group_id = group_id
        self.topic = topic
        self.tracker = OffsetTracker()
        self._lock = threading.Lock()  # rebalance callbacks run on the consumer's thread
        self._tasks: set[asyncio.Task[End]] = set()
        self._stopping = asyncio.Event()
        self._last_commit = 0.0
        # Halved whenever the broker refuses a commit's metadata as too large (a broker whose
        # offset.metadata.max.bytes is below the default): commits then carry less of it.
        self._metadata_budget = MAX_METADATA_CHARS
        self.consumer: AsyncConsumer | None = None
        #: Records fetched and handed to a job or skipped, and those whose job ended: what
        #: lies between is in flight (the account the hostile-input tests check).
        self.fetched = 0
        self.ended: dict[End, int] = dict.fromkeys(End, 0)
        #: Records a poll returned while the worker waited (a partition assigned meanwhile).
        self._early: list[Any] = []

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka settings of this worker's consumer."""
        fetch_bytes = max(512 * 1024, self.settings.max_event_bytes + 64 * 1024)
        return self.settings.kafka_config(
            **{
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                # One consumer per stream (a hundred in a process): keep librdkafka's
                # prefetch queue and fetch responses small; its defaults (50 MB responses,
                # 1 MB per partition) assume one consumer per process. The queue limit is per
                # partition, and a fetch still returns a partition's first record batch whole
                # (KIP-74) however small the per-partition limit, so one fetch brings about
                # one producer batch (RECORD_BATCH_BYTES) per partition. At 100 streams
                # (bench/e2e.py) 32 KB for both limits peaked at ~260 MB, 16 KB/8 KB at
                # ~186 MB (librdkafka's decompressed batches), with no loss of 1-stream rate.
                "queued.max.messages.kbytes": 16,
                "queued.min.messages": 500,
                # A fetch response must still fit the largest event the producer accepts.
                "fetch.max.bytes": fetch_bytes,
                "max.partition.fetch.bytes": 8 * 1024,
                "message.max.bytes": fetch_bytes,  # librdkafka: must not exceed fetch.max.bytes
                "receive.message.max.bytes": fetch_bytes + 64 * 1024,
                "fetch.wait.max.ms": 100,
                # librdkafka postpones the next fetch by this long once the small queue
                # above is full (default 1 s): at thousands of events/s that idles the stream.
                "fetch.queue.backoff.ms": 5,
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "on_commit": self._on_commit,
            }
        )

    # offsets ---------------------------------------------------------------------------------
    def add(self, partition: int, offset: int) -> int | None:
        """A record was fetched: return the epoch to pass to ``done`` once it is finished, or
        None when it must not be handled (its partition was revoked meanwhile, or the
        partition's committed metadata says it was finished before a crash or rebalance)."""
        with self._lock:
            return self.tracker.add(self.topic, partition, offset)

    def done(self, partition: int, offset: int, epoch: int) -> None:
        """A record is finished: delivered, handed on, dead-lettered or skipped."""
        with self._lock:
            self.tracker.done(self.topic, partition, offset, epoch)

    def track(self, committed: list[TopicPartition]) -> None:
        """Track newly assigned partitions afresh from what the group committed for them
        (their ``committed()`` answer: offset and finished-offsets metadata)."""
        with self._lock:
            for tp in committed:
                self.tracker.assign(tp.topic, tp.partition, tp.offset, tp.metadata)

    def commit(self, *, force: bool = False, sync: bool = False) -> None:
        """Commit what is committable (at most every COMMIT_INTERVAL unless forced).

        Offsets count as committed once the broker confirms them (``_on_commit`` for an
        asynchronous commit); until then they are committed again on the next call.
        """
        now = time.monotonic()
        if self.consumer is None or (not force and now - self._last_commit < COMMIT_INTERVAL):
            return
        self._last_commit = now
        with self._lock:
            ready = self.tracker.committable(self._metadata_budget)
        if not ready:
            return
        offsets = _topic_partitions(ready)
        try:
            if sync:
                self._confirmed(self.consumer.consumer.commit(offsets=offsets, asynchronous=False))
            else:
                self.consumer.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # never fatal: what is not confirmed is committed next time
            err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
            self._commit_failed(err, str(exc))

    async def commit_every_interval(self) -> None:
        """Commit every COMMIT_INTERVAL until stop(), whatever the fetch loop waits for: a
        batch whose records wait for delivery slots would otherwise hold commits back for as
        long as the slowest deliveries take, and a crash would repeat all they finished.

        The commit runs on the consumer's own thread, between its fetches: a revocation
        (served inside a fetch) can then never fall between reading what is committable and
        sending it, and the event loop never waits for a fetch to release the consumer."""
        consumer = self.consumer
        assert consumer is not None
        while not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), COMMIT_INTERVAL)
            with contextlib.suppress(RuntimeError):  # the consumer closed meanwhile
                await consumer.call(self.commit)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's report of an asynchronous commit (on the consumer's thread)."""
        if err is not None:
            self._commit_failed(err, str(err))
            return
        self._confirmed(partitions)

    def _confirmed(self, partitions: list[TopicPartition] | None) -> None:
        confirmed = [
            Commit(tp.topic, tp.partition, tp.offset, tp.metadata or "")
            for tp in partitions or ()
            if tp.error is None
        ]
        with self._lock:
            self.tracker.mark_committed(confirmed)

    def _commit_failed(self, err: KafkaError | None, error: str) -> None:
        """Nothing is marked committed: the next commit tries again."""
        code = err.code() if isinstance(err, KafkaError) else None
        if code == KafkaError.OFFSET_METADATA_TOO_LARGE:
            self._metadata_budget //= 2
            log.warning(
                "commit_metadata_too_large", group=self.group_id, budget=self._metadata_budget
            )
            return
        log.warning("commit_failed", group=self.group_id, error=error)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what is finished of the partitions we lose, then forget them: whatever
        finishes later is the next owner's to repeat, never ours to commit."""
        lost = {(tp.topic, tp.partition) for tp in partitions}
        if self.consumer is not None:
            self.consumer.revoked(lost)
        with self._lock:
            ready = [
                c
                for c in self.tracker.committable(self._metadata_budget)
                if (c.topic, c.partition) in lost
            ]
            for topic, partition in lost:
                self.tracker.drop(topic, partition)
        if ready:
            offsets = _topic_partitions(ready)
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log.warning("revoke_commit_failed", group=self.group_id, error=str(exc))

    def spawn(
        self, job: Job, work: Any, partition: int, offset: int, epoch: int
    ) -> asyncio.Task[End]:
        """Run one job (``work``, a coroutine that returns its :class:`End`); its offset is
        finished when it ends."""
        task: asyncio.Task[End] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, job, partition, offset, epoch))
        return task

    def _finished(
        self, task: asyncio.Task[End], job: Job, partition: int, offset: int, epoch: int
    ) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return  # stopped mid-job: the record stays unfinished, attempted after a restart
        error = task.exception()
        if error is not None:
            # The engine turns every failure into an end; this is a bug in it. The record
            # still ends: in the dead-letter topic, with the error as its reason.
            log.error(
                "job_failed",
                group=self.group_id,
                partition=partition,
                offset=offset,
                exc_info=(type(error), error, error.__traceback__),
            )
            reason = f"internal error: {type(error).__name__}: {error}"
            last_resort = self.engine.dead_letter(job, reason, datetime.now(UTC))
            self.spawn(job, last_resort, partition, offset, epoch)
            return
        self.ended[task.result()] += 1
        self.done(partition, offset, epoch)

    def skipped(self, partition: int, offset: int, epoch: int) -> None:
        """A fetched record needs no job (not for this stream)."""
        self.ended[End.SKIPPED] += 1
        self.done(partition, offset, epoch)

    async def wait_polling(self, waiting: Awaitable[Any]) -> bool:
        """Wait for ``waiting`` while the consumer keeps polling, its partitions paused (see
        the module docstring). False when the worker stopped first (``waiting`` is then
        cancelled)."""
        future = asyncio.ensure_future(waiting)
        consumer = self.consumer
        paused: list[TopicPartition] = []
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=POLL_WHILE_WAITING)
                if done:
                    future.result()
                    return True
                if self.stopping or consumer is None:
                    future.cancel()
                    return False
                if not paused:
                    paused = await consumer.call(self._pause_all, consumer.consumer)
                self._early.extend(
                    m for m in await consumer.call(consumer.consumer.consume, 1, 0) if m
                )
        finally:
            if paused and consumer is not None:
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    await consumer.call(self._resume_some, consumer.consumer, paused)

    def _pause_all(self, consumer: Consumer) -> list[TopicPartition]:
        """Pause what is assigned and not paused already; returns what it paused."""
        held = self.paused_partitions()
        mine = [tp for tp in consumer.assignment() if tp.partition not in held]
        if mine:
            consumer.pause(mine)
        return mine

    def _resume_some(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        held = self.paused_partitions()
        back = [
            tp
            for tp in partitions
            if (tp.topic, tp.partition) in assigned and tp.partition not in held
        ]
        if back:
            consumer.resume(back)

    def paused_partitions(self) -> set[int]:
        """Partitions paused for reasons of the worker's own (none here)."""
        return set()

    def take_early(self) -> list[Any]:
        """Records a poll returned while waiting, to handle before the next fetch."""
        early, self._early = self._early, []
        return early

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for in-flight jobs, then make the final commit."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        self.commit(force=True, sync=True)

    def stop(self) -> None:
        """Ask the worker to stop fetching."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping.is_set()


class StreamWorker(CommittingWorker):
    """Delivers one stream's share of the lifecycle topic."""

    def __init__(self, settings: Settings, engine: Engine, runtime: StreamRuntime) -> None:
        stream_id = runtime.stream.id
        super().__init__(
            settings,
            engine,
            group_id=settings.topic(constants.STREAM_GROUP_PREFIX + stream_id),
            topic=settings.lifecycle_topic,
        )
        self.runtime = runtime
        self.lines = SubjectLines()
        self._waiting = asyncio.Semaphore(MAX_WAITING)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shown_parked = (-1, -1)
        self._since_span_check = 0

    def update(self, runtime: StreamRuntime) -> None:
        """Take a changed stream (destination, subscriptions, settings) without a restart."""
        self.runtime = runtime

    @property
    def fetch_batch(self) -> int:
        """Records taken from librdkafka at once: enough to keep every slot busy, not more
        (a taken record waits in this process's memory until a slot frees)."""
        return min(FETCH_BATCH, self.runtime.stream.delivery.max_in_flight)

    def _start_offset(self, consumer: Consumer, tp: TopicPartition) -> int:
        position = self.runtime.stream.delivery.start_position
        if position == "earliest":
            return OFFSET_BEGINNING
        when: datetime = self.runtime.stream.created_at if position == "now" else position
        # The end offset is read before the time lookup, and used as an explicit offset: a
        # lazily resolved OFFSET_END would skip events produced while the consumer starts.
        # Any record after this end that the time lookup did not find is later than `when`.
        _low, end = consumer.get_watermark_offsets(
            TopicPartition(tp.topic, tp.partition), timeout=10, cached=False
        )
        found = consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, int(when.timestamp() * 1000))], timeout=10
        )[0]
        return found.offset if found.offset >= 0 else end

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions the group never committed start at the stream's start position. A
        partition comes back unpaused: librdkafka keeps the pause of a partition this worker
        paused while waiting for a slot (``wait_polling``) across a rebalance that returns
        it, and that wait resumes only what it still holds when it ends."""
        committed = consumer.committed(partitions, timeout=10)
        self.track(committed)
        for tp in committed:
            if tp.offset < 0:
                tp.offset = self._start_offset(consumer, tp)
        consumer.assign(committed)
        consumer.resume(committed)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what is finished, then cancel the lost partitions' ordered events: their next
        owner attempts them again in order, and must not race a retry of ours."""
        super().on_revoke(consumer, partitions)
        if self._loop is not None:
            lost = {tp.partition for tp in partitions}
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing runs anyway
                self._loop.call_soon_threadsafe(self._drop_lines, lost)

    def _drop_lines(self, partitions: set[int]) -> None:
        for task in self.lines.drop(partitions):
            task.cancel()
        self.show_parked()

    async def run(self) -> None:
        """Consume and deliver until stop(); then drain and commit."""
        self._loop = asyncio.get_running_loop()
        consumer = AsyncConsumer(self.consumer_config(), name=f"tidings-{self.runtime.stream.id}")
        self.consumer = consumer
        consumer.consumer.subscribe(
            [self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke
        )
        committer = asyncio.create_task(self.commit_every_interval())
        try:
            while not self.stopping:
                batch = self.take_early() or await consumer.consume(self.fetch_batch, 0.1)
                for message in batch:
                    if self.stopping:
                        break  # unhandled records stay uncommitted: the next owner has them
                    if message.error() is not None:
                        log.warning("consume_error", error=str(message.error()))
                        continue
                    await self._handle(message)
                self.commit()
        finally:
            committer.cancel()
            await self.drain(30.0)
            await consumer.close()

    async def _handle(self, message: Any) -> None:
        partition, offset = message.partition(), message.offset()
        epoch = self.add(partition, offset)
        if epoch is None:
            return  # revoked meanwhile, or finished before a restart (see ``add``)
        self.fetched += 1
        headers = RecordHeaders.of(message)
        runtime = self.runtime
        event_type = headers.text(constants.HEADER_EVENT_TYPE)
        if event_type and not runtime.wants(event_type):
            self.skipped(partition, offset, epoch)
            return
        job = Job.from_lifecycle(runtime.stream.id, message, headers)
        if runtime.stream.delivery.ordering == "subject" and job.key is not None:
            await self._handle_in_order(job, (partition, job.key), offset, epoch)
            return
        # Back-pressure: never more than max_in_flight, polling on while waiting.
        if runtime.slots.has_room():
            await runtime.slots.acquire()
        elif not await self.wait_polling(runtime.slots.acquire()):
            return  # stopping: the record stays unfinished for the next owner
        work = self.engine.process(job, runtime, holding_slot=True)
        self.spawn(job, work, partition, offset, epoch)

    # ordered delivery (see dispatcher.subject_order) ----------------------------------------
    async def _handle_in_order(self, job: Job, subject: Subject, offset: int, epoch: int) -> None:
        """Attempt the event now if its subject is free, else queue it behind the subject's
        latest event (holding no slot while it waits)."""
        if not await self._within_span(subject[0], offset):
            return  # stopping: the record stays unfinished for the next owner
        runtime = self.runtime
        ahead = self.lines.last(subject)
        if ahead is None:
            if runtime.slots.has_room():
                await runtime.slots.acquire()
            elif not await self.wait_polling(runtime.slots.acquire()):
                return  # stopping: the record stays unfinished for the next owner
            turn = _Turn(self, subject)
            work = self.engine.process(job, runtime, holding_slot=True, in_order=turn)
        else:
            if not self._waiting.locked():
                await self._waiting.acquire()
            elif not await self.wait_polling(self._waiting.acquire()):
                return
            ahead = self.lines.last(subject)  # it may have ended while we waited
            work = self._in_turn(ahead, job, subject)
        task = self.spawn(job, work, subject[0], offset, epoch)
        if self.lines.join(subject, job, task):
            self.engine.log_parked(job)
        task.add_done_callback(lambda done: self._ended_in_order(subject, done))
        self.show_parked()

    async def _within_span(self, partition: int, offset: int) -> bool:
        """Wait (polling on) while the partition was read too far past its oldest unfinished
        ordered event (see dispatcher.subject_order); False when stopping first."""
        self._since_span_check += 1
        if self._since_span_check < subject_order.SPAN_CHECK_EVERY:
            return True
        self._since_span_check = 0
        oldest = self.lines.oldest(partition)
        if oldest is None or offset - oldest[0] <= subject_order.MAX_SPAN:
            return True
        log.warning(
            "ordered_span_exceeded",
            stream_id=self.runtime.stream.id,
            partition=partition,
            oldest_unfinished=oldest[0],
            offset=offset,
        )
        return await self.wait_polling(asyncio.wait({oldest[1]}))

    async def _in_turn(self, ahead: asyncio.Task[End] | None, job: Job, subject: Subject) -> End:
        """Wait for the subject's event before this one to end, then attempt this one."""
        try:
            if ahead is not None:
                await asyncio.wait({ahead})
        finally:
            self._waiting.release()
        if ahead is not None and ahead.cancelled():
            # Its record stays unfinished, so must this later one: both come again in order.
            raise asyncio.CancelledError
        return await self.engine.process(job, self.runtime, in_order=_Turn(self, subject))

    def _ended_in_order(self, subject: Subject, task: asyncio.Task[End]) -> None:
        self.lines.ended(subject, task)
        self.show_parked()

    async def sleep_until(self, due: datetime) -> None:
        """Sleep until ``due``; CancelledError when the worker stops first."""
        delay = max(0.0, (due - datetime.now(UTC)).total_seconds())
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            return
        raise asyncio.CancelledError

    def show_parked(self) -> None:
        """Update the stream's parked gauges (when the counts changed)."""
        counts = (self.lines.parked_subjects, self.lines.parked_events)
        if counts != self._shown_parked:
            self._shown_parked = counts
            self.engine.gauge_parked(self.runtime.stream.id, *counts)


class _Turn:
    """An ordered event's place in its subject's line (the engine's ``InOrder``)."""

    __slots__ = ("_subject", "_worker")

    def __init__(self, worker: StreamWorker, subject: Subject) -> None:
        self._worker = worker
        self._subject = subject

    @property
    def runtime(self) -> StreamRuntime:
        """The stream as it is now."""
        return self._worker.runtime

    async def wait(self, job: Job, due: datetime) -> None:
        """Park the subject's later events, then wait until ``due`` (CancelledError when the
        worker stops first: the record stays unfinished, attempted again after a restart)."""
        worker = self._worker
        for parked in worker.lines.block(self._subject):
            worker.engine.log_parked(parked)
        worker.show_parked()
        await worker.sleep_until(due)
