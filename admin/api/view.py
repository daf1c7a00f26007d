"""The admin service's view of the streams, rebuilt from Kafka on start and kept current.

One consumer (no consumer group: it assigns every partition itself) replays the registry
(``tidings.streams``) from its beginning and then follows it. The registry is small (a
record per stream write, compacted), so it is held in memory; delivery history, which
grows with traffic, lives on disk in :mod:`admin.history`.

"Caught up" means every partition was read up to the end offset observed at start.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from confluent_kafka import KafkaException, Message, TopicPartition

from admin.api.stream_table import StreamTable
from dispatcher.kafka_io import AsyncConsumer
from dispatcher.secret_box import SecretBox
from producer.config import Settings

log = structlog.get_logger(__name__)

#: How long a readiness probe waits for the broker's metadata.
PROBE_TIMEOUT = 2.0


def assigning_consumer(settings: Settings, name: str) -> AsyncConsumer:
    """A consumer that assigns partitions itself: a throwaway group id, nothing committed."""
    return AsyncConsumer(
        settings.kafka_config(
            **{
                "group.id": f"{settings.topic_prefix}{name}-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
            }
        ),
        name=f"tidings-{name}",
    )


class AdminView:
    """Streams, replayed from Kafka and followed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = StreamTable(SecretBox.from_settings(settings))
        self.caught_up = asyncio.Event()
        self._consumer: AsyncConsumer | None = None
        self._stopping = False
        self._topics = (settings.streams_topic,)
        #: Next offset to read per partition, kept across reconnects so nothing is read twice.
        self._positions: dict[tuple[str, int], int] = {}
        #: End offsets observed at the first start: caught up once every position reaches them.
        self._ends: dict[tuple[str, int], int] | None = None

    async def run(self) -> None:
        """Replay and follow the topics until :meth:`stop`. Retries while Kafka is away."""
        while not self._stopping:
            try:
                await self._follow()
            except KafkaException as exc:
                log.warning("admin_view_kafka_error", error=str(exc))
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = assigning_consumer(self.settings, "admin-view")
        self._consumer = consumer
        try:
            await self._assign(consumer)
            positions = self._positions
            ends = self._ends or {}
            while not self._stopping:
                for message in await consumer.consume(1000, 0.2):
                    if message.error() is not None:
                        continue
                    where = (message.topic() or "", message.partition() or 0)
                    positions[where] = (message.offset() or 0) + 1
                    self._apply(message)
                if not self.caught_up.is_set() and all(
                    positions[tp] >= end for tp, end in ends.items()
                ):
                    self.caught_up.set()
                    log.info("admin_view_caught_up", streams=len(self.table))
        finally:
            self._consumer = None
            await consumer.close()

    async def _assign(self, consumer: AsyncConsumer) -> None:
        """Assign every partition from where the view stands (its start at first)."""
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in self._topics:
            metadata = await consumer.call(consumer.consumer.list_topics, topic, 10)
            if metadata.topics[topic].error is not None:
                raise KafkaException(metadata.topics[topic].error)
            for partition in metadata.topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                low, high = await consumer.call(consumer.consumer.get_watermark_offsets, tp, 10)
                start = max(low, self._positions.get((topic, partition), low))
                self._positions[(topic, partition)] = start
                ends[(topic, partition)] = high
                assignment.append(TopicPartition(topic, partition, start))
        if self._ends is None:
            self._ends = ends
        consumer.consumer.assign(assignment)

    def _apply(self, message: Message) -> None:
        self.table.observe(
            (message.key() or b"").decode(errors="replace"),
            message.value(),
            offset=message.offset(),
            headers=message.headers(),
        )

    async def kafka_reachable(self) -> bool:
        """Whether the broker answers a metadata request now."""
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            await asyncio.wait_for(
                consumer.call(
                    consumer.consumer.list_topics, self.settings.streams_topic, PROBE_TIMEOUT
                ),
                PROBE_TIMEOUT + 1,
            )
        except (KafkaException, TimeoutError, RuntimeError):
            return False
        return True

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current fetch."""
        self._stopping = True
