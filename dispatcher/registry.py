"""The registry of streams: the compacted topic ``tidings.streams``, keyed by stream id.

:class:`RegistryWriter` writes a stream's latest state (or a tombstone to delete it);
:class:`RegistryView` replays the topic from the beginning and follows it, keeping the
current streams in memory and telling its owner which ids changed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Producer, TopicPartition
from pydantic import ValidationError

from dispatcher.kafka_io import AsyncConsumer
from dispatcher.registry_order import BadConditionError, Headers, RegistryOrder, if_offset_of
from dispatcher.secret_box import SecretBox
from dispatcher.streams import Stream
from producer.config import Settings
from schemas.constants import HEADER_IF_OFFSET
from schemas.ids import is_stream_id

log = structlog.get_logger(__name__)


class RegistryWriter:
    """Writes stream states to the registry topic and waits for the acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.streams_topic
        self.box = SecretBox.from_settings(settings)
        self._producer = Producer(
            settings.kafka_config(**{"enable.idempotence": True, "acks": "all", "linger.ms": 0})
        )

    def put(self, stream: Stream) -> Stream:
        """Store the stream's state (its ``updated_at`` is set now)."""
        return self.put_record(stream)[0]

    def put_record(self, stream: Stream) -> tuple[Stream, bytes]:
        """:meth:`put`, also returning the exact record value sent (encryption is randomized,
        so serializing the stream again would not give the same bytes)."""
        stream = stream.model_copy(update={"updated_at": datetime.now(UTC)})
        value = stream.to_registry(self.box)
        self._send(stream.id, value)
        return stream, value

    def put_if(self, stream: Stream, if_offset: int) -> tuple[int, int]:
        """Store the stream's state only if the record at ``if_offset`` still holds it (see
        :mod:`dispatcher.registry_order`); returns the record's (partition, offset), which
        :meth:`RegistryView.holds` then judges. ``updated_at`` is kept."""
        headers: list[tuple[str, str | bytes | None]] = [(HEADER_IF_OFFSET, str(if_offset))]
        return self._send(stream.id, stream.to_registry(self.box), headers)

    def delete(self, stream_id: str) -> None:
        """Delete a stream: a tombstone for its id."""
        self._send(stream_id, None)

    def _send(
        self,
        key: str,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> tuple[int, int]:
        """Write one record and wait for it; its (partition, offset)."""
        errors: list[str] = []
        written: list[tuple[int, int]] = []

        def delivered(err: Any, msg: Any) -> None:
            if err:
                errors.append(err.str())
            else:
                written.append((msg.partition(), msg.offset()))

        self._producer.produce(
            self._topic, value, key.encode(), headers=headers, on_delivery=delivered
        )
        if self._producer.flush(30) or errors or not written:
            raise RuntimeError(f"registry write for {key} failed: {errors or 'timeout'}")
        return written[0]

    async def aput(self, stream: Stream) -> Stream:
        """:meth:`put` without blocking the event loop."""
        return await asyncio.to_thread(self.put, stream)

    async def aput_record(self, stream: Stream) -> tuple[Stream, bytes]:
        """:meth:`put_record` without blocking the event loop."""
        return await asyncio.to_thread(self.put_record, stream)

    async def aput_if(self, stream: Stream, if_offset: int) -> tuple[int, int]:
        """:meth:`put_if` without blocking the event loop."""
        return await asyncio.to_thread(self.put_if, stream, if_offset)

    async def adelete(self, stream_id: str) -> None:
        """:meth:`delete` without blocking the event loop."""
        await asyncio.to_thread(self.delete, stream_id)


OnChange = Callable[[set[str]], Awaitable[None]]


def registry_key(message: Any) -> str | None:
    """A registry record's key (a stream id), or None when it is not one: anything can write
    to the topic, and a key that is not a stream id names no stream."""
    try:
        key = (message.key() or b"").decode()
    except UnicodeDecodeError:
        return None
    return key if is_stream_id(key) else None


class RegistryView:
    """The current streams, rebuilt from the registry topic and kept up to date."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.streams: dict[str, Stream] = {}
        self._box = SecretBox.from_settings(settings)
        self.order = RegistryOrder()
        #: Ids whose latest record is a tombstone: deleted, not merely not yet seen.
        self.deleted: set[str] = self.order.deleted
        #: The next offset to read, by partition: how far this view has applied the topic.
        self.positions: dict[int, int] = {}
        self._progress = asyncio.Condition()
        self.caught_up = asyncio.Event()
        self._consumer: AsyncConsumer | None = None
        self._stopping = False

    async def run(self, on_change: OnChange | None = None) -> None:
        """Replay and follow the topic until :meth:`stop`; ``on_change`` gets changed ids."""
        topic = self._settings.streams_topic
        consumer = AsyncConsumer(
            self._settings.kafka_config(
                **{
                    "group.id": f"{self._settings.topic_prefix}registry-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                }
            ),
            name="tidings-registry",
        )
        self._consumer = consumer
        try:
            metadata = await consumer.call(consumer.consumer.list_topics, topic, 10)
            partitions = list(metadata.topics[topic].partitions)
            ends: dict[int, int] = {}
            for partition in partitions:
                low, high = await consumer.call(
                    consumer.consumer.get_watermark_offsets, TopicPartition(topic, partition), 10
                )
                if high > low:  # an empty partition has nothing to catch up on
                    ends[partition] = high
            consumer.consumer.assign(
                [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
            )
            while not self._stopping:
                messages = await consumer.consume(500, 0.2)
                changed: set[str] = set()
                for message in messages:
                    partition, offset = message.partition(), message.offset()
                    if message.error() is not None or partition is None or offset is None:
                        continue
                    key = registry_key(message)
                    if key is None:
                        log.error("registry_key_invalid", offset=offset)
                    elif self._apply(key, message.value(), offset, message.headers()):
                        changed.add(key)
                    self.positions[partition] = offset + 1
                if messages:
                    async with self._progress:
                        self._progress.notify_all()
                if not self.caught_up.is_set() and self._reached(consumer, topic, ends):
                    self.caught_up.set()
                if changed and on_change is not None:
                    await on_change(changed)
        finally:
            await consumer.close()

    @staticmethod
    def _reached(consumer: AsyncConsumer, topic: str, ends: dict[int, int]) -> bool:
        """True once the fetch position passed the end offsets seen at start (positions, not
        record offsets: compaction leaves gaps the last record may not reach)."""
        if not ends:
            return True
        current = consumer.consumer.position([TopicPartition(topic, p) for p in ends])
        return all(tp.offset >= ends[tp.partition] for tp in current)

    def _apply(self, key: str, value: bytes | None, offset: int, headers: Headers) -> bool:
        try:
            if_offset = if_offset_of(headers)
        except BadConditionError as exc:
            log.error("registry_record_invalid", stream_id=key, error=str(exc))
            return False
        if not self.order.admit(key, offset, value is None, if_offset):
            log.info("registry_write_superseded", stream_id=key, offset=offset)
            return False
        if value is None:
            return self.streams.pop(key, None) is not None
        try:
            stream = Stream.from_registry(value, self._box)
        except ValidationError as exc:
            # Never keep running a stream on a state older than its latest record.
            # Field paths only: the message would echo input values, which may be secrets.
            fields = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
            log.error("registry_record_invalid", stream_id=key, fields=fields)
            return self.streams.pop(key, None) is not None
        except Exception as exc:  # written by someone else: never let it stop the registry
            log.error("registry_record_invalid", stream_id=key, error=type(exc).__name__)
            return self.streams.pop(key, None) is not None
        self.streams[key] = stream
        return True

    async def holds(self, stream_id: str, partition: int, offset: int) -> bool:
        """Wait until this view has read past ``offset`` of ``partition``; then whether that
        record holds the stream's state (a conditional write that applied)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.positions.get(partition, 0) > offset)
        return self.order.offsets.get(stream_id) == offset

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current fetch."""
        self._stopping = True
