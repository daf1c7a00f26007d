"""The history store's writer: reads ``tidings.deliveries`` and ``tidings.dlq`` from the
offsets the store holds and writes each fetch, with the offsets after it, in one
transaction. A restart resumes where the last commit stopped; a kill -9 loses the
uncommitted fetch and reads it again, so no attempt is lost or stored twice.

With SQLite each admin service has its own file and reads every partition itself. With
PostgreSQL the replicas share the database, so they join one consumer group
(``<prefix>admin-history``): each partition has one writer, and a new owner starts from the
offsets in the database (Kafka's committed offsets are not used).

Retention runs here too, between fetches, in chunks: the writer is the only one that
deletes, so deletes never wait for (or hold up) another writer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from admin.history.batch import Batch, Partition, letter_change
from admin.history.model import Coordinates
from admin.history.store import HistoryStore, OffsetConflict
from dispatcher.delivery_log import AttemptRecord, attempt_lines
from dispatcher.kafka_io import AsyncConsumer
from producer.config import Settings
from schemas.record_headers import RecordHeaders

log = structlog.get_logger(__name__)

#: Records per fetch (one transaction) at most (up to 200 attempts each): large enough to
#: write 20,000 attempts/s in a few commits a second, small enough to keep memory flat and
#: stay well within the 1 s freshness target.
FETCH_RECORDS: Final = 250
#: How long a fetch waits for a first record when the topics are idle.
FETCH_WAIT: Final = 0.2
#: Events deleted per stream and transaction by retention.
RETENTION_CHUNK: Final = 2000
#: Seconds between retention passes once a pass found nothing more to delete.
RETENTION_PAUSE: Final = 10.0
#: What a consumer prefetches at most (librdkafka queue, KiB): memory stays flat.
PREFETCH_KIB: Final = 8192


class HistoryIngest:
    """Feeds the store from Kafka until :meth:`stop`."""

    def __init__(self, settings: Settings, store: HistoryStore, *, shared: bool) -> None:
        self.settings = settings
        self.store = store
        self.shared = shared
        self.caught_up = asyncio.Event()
        self.topics = (settings.deliveries_topic, settings.dlq_topic)
        #: Records read since start (tests and the benchmark count replays with it).
        self.records_read = 0
        self._stopping = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-history")
        self._parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-parse")
        #: The store's offsets as this writer last saw them (what its next write expects).
        self._since: dict[Partition, int] = {}
        self._ends: dict[Partition, int] | None = None
        self._next_expiry = 0.0

    async def _in_writer(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _in_parser(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._parser, fn, *args)

    async def run(self) -> None:
        """Follow the topics until :meth:`stop`; retries while Kafka is away."""
        while not self._stopping:
            try:
                await self._follow()
            except KafkaException as exc:
                log.warning("history_ingest_kafka_error", error=str(exc))
                await asyncio.sleep(1.0)
            except OffsetConflict as exc:
                log.info("history_ingest_offsets_moved", detail=str(exc))

    def _consumer(self) -> AsyncConsumer:
        prefix = self.settings.topic_prefix
        group = (
            f"{prefix}admin-history" if self.shared else f"{prefix}admin-history-{uuid.uuid4().hex}"
        )
        return AsyncConsumer(
            self.settings.kafka_config(
                **{
                    "group.id": group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "queued.max.messages.kbytes": PREFETCH_KIB,
                }
            ),
            name="tidings-history-ingest",
        )

    async def _follow(self) -> None:
        consumer = self._consumer()
        try:
            self._since = await self._in_writer(self.store.offsets)
            marks = await consumer.call(self._watermarks, consumer.consumer)
            if self._ends is None:
                self._ends = {tp: high for tp, (low, high) in marks.items() if high > low}
            if self.shared:
                consumer.consumer.subscribe(list(self.topics), on_assign=self._on_assign)
            else:
                consumer.consumer.assign(
                    [
                        TopicPartition(topic, part, max(low, self._since.get((topic, part), low)))
                        for (topic, part), (low, _high) in marks.items()
                    ]
                )
            # One fetch is parsed while the one before is written: the database's work (in
            # the server, or in SQLite's C code) runs while Python parses.
            writing: asyncio.Future[Any] | None = None
            try:
                while not self._stopping:
                    messages = await consumer.consume(FETCH_RECORDS, FETCH_WAIT)
                    batch = await self._in_parser(fold, messages, self.settings.deliveries_topic)
                    if writing is not None:
                        await writing
                        writing = None
                    if batch:
                        writing = asyncio.ensure_future(self._in_writer(self._write, batch))
                    self.records_read += len(messages)
                    if not self.caught_up.is_set():
                        await self._check_caught_up()
                    if time.monotonic() >= self._next_expiry:
                        await self._in_writer(self._expire)
            finally:
                if writing is not None:
                    await writing
        finally:
            await consumer.close()

    def _watermarks(self, consumer: Consumer) -> dict[Partition, tuple[int, int]]:
        """Low and high offsets of every partition of the topics."""
        marks: dict[Partition, tuple[int, int]] = {}
        for topic in self.topics:
            metadata = consumer.list_topics(topic, 10)
            if metadata.topics[topic].error is not None:
                raise KafkaException(metadata.topics[topic].error)
            for part in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, part), 10)
                marks[(topic, part)] = (low, high)
        return marks

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A group member's new partitions start from the store's offsets."""
        since = self.store.offsets()
        self._since = since
        for tp in partitions:
            tp.offset = since.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)

    async def _check_caught_up(self) -> None:
        ends = self._ends or {}
        # Shared: another replica may be the writer, so the database says where things stand
        # (read beside the writer thread, never queued behind a write).
        stored = self._since if not self.shared else await asyncio.to_thread(self.store.offsets)
        if all(stored.get(tp, -1) >= end for tp, end in ends.items()):
            self.caught_up.set()
            log.info("history_caught_up", store=self.store.engine.where)

    def _write(self, batch: Batch) -> None:
        """Write one fetch's batch (on the writer thread)."""
        try:
            self.store.write(batch, self._since)
        except OffsetConflict:
            self._since = self.store.offsets()
            raise
        self._since = {**self._since, **batch.offsets}

    def _expire(self) -> None:
        before = datetime.now(UTC) - self.settings.deliveries_retention
        deleted = self.store.expire(before, RETENTION_CHUNK)
        if deleted:
            log.info("history_expired", events=deleted, before=before.isoformat())
        # A full chunk means more is due: go on after the next fetch.
        self._next_expiry = time.monotonic() + (
            0.0 if deleted >= RETENTION_CHUNK else RETENTION_PAUSE
        )

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current fetch."""
        self._stopping = True

    def close(self) -> None:
        """Release the writer and parser threads (after :meth:`run` returned)."""
        self._writer.shutdown(wait=True)
        self._parser.shutdown(wait=True)


def fold(messages: Sequence[Message], deliveries_topic: str) -> Batch:
    """One batch from a fetch: attempts of the delivery log, dead letters and purge
    markers of the dead-letter topic, and the offsets after them."""
    batch = Batch()
    for message in messages:
        if message.error() is not None:
            continue
        topic, part, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        batch.read(topic, part, offset)
        if topic == deliveries_topic:
            for line in attempt_lines(message.value() or b""):
                try:
                    batch.add_attempt(AttemptRecord.from_record(line))
                except ValidationError:
                    log.warning("delivery_record_invalid", partition=part, offset=offset)
        else:
            _kind, stamp = message.timestamp()
            change = letter_change(
                Coordinates(topic, part, offset), RecordHeaders.of(message), stamp
            )
            if change is not None:
                batch.letters.append(change)
    return batch
