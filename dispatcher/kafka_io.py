"""Bridges between confluent-kafka's threads and asyncio.

librdkafka calls back on whatever thread polls it; these wrappers poll on their own threads
and hand results to the event loop with ``call_soon_threadsafe``, so coroutines can await a
produce acknowledgement or a batch of records without blocking the loop.

confluent-kafka's own ``confluent_kafka.aio`` wrappers were considered: they move rebalance
callbacks onto the event loop and share one executor, whereas a worker here must commit its
revoked partitions synchronously on the consumer's own thread before they move, and each of
up to a hundred stream consumers gets a thread of its own so none waits for another.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from producer.config import RECORD_BATCH_BYTES

Headers = Sequence[tuple[str, bytes | str]]


class AsyncProducer:
    """One confluent-kafka producer shared by a process; ``await produce(...)`` returns once
    the broker acknowledged the record (``acks=all``, idempotent)."""

    def __init__(self, config: dict[str, Any]) -> None:
        base = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "batch.size": RECORD_BATCH_BYTES,
        }
        base.update(config)
        self._producer = Producer(base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="tidings-producer", daemon=True)
        self._thread.start()
        self._closed = False

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def produce_nowait(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        on_done: Callable[[KafkaError | None], None] | None = None,
    ) -> None:
        """Queue a record; ``on_done`` runs on the poll thread with the delivery error.

        Without ``on_done`` no Python callback is registered at all: the delivery log's
        records need none, and the poll thread would otherwise take the GIL for each.
        """
        extra: dict[str, Any] = {}
        if on_done is not None:

            def report(err: KafkaError | None, _msg: Message) -> None:
                on_done(err)

            extra["on_delivery"] = report
        if headers:
            extra["headers"] = list(headers)
        while True:
            try:
                self._producer.produce(topic, value, key, **extra)
                return
            except BufferError:
                self._producer.poll(0.01)

    async def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Produce one record and wait for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle(err: KafkaError | None) -> None:
            if future.done():
                return
            if err is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(err))

        self.produce_nowait(topic, value, key, headers, lambda err: _call_soon(loop, settle, err))
        await future

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every queued record; returns how many are left."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop the poll thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join()


def _call_soon(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[KafkaError | None], None],
    err: KafkaError | None,
) -> None:
    loop.call_soon_threadsafe(fn, err)


class AsyncConsumer:
    """A confluent-kafka consumer whose blocking calls run on a thread of its own, so a
    hundred of them never starve each other or the event loop."""

    def __init__(self, config: dict[str, Any], name: str) -> None:
        self.consumer = Consumer(config)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False
        self._revoked: set[tuple[str, int]] = set()  # during a fetch's second call

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one consumer method on the consumer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def consume(self, max_records: int, timeout: float) -> list[Message]:
        """Fetch up to ``max_records``: wait at most ``timeout`` seconds for the first, then
        take only what is already queued (librdkafka's batch call would otherwise hold the
        first record until the batch fills or the timeout ends: latency at low rates)."""
        messages: list[Message] = await self.call(self._fetch, max_records, timeout)
        return messages

    def _fetch(self, max_records: int, timeout: float) -> list[Message]:
        first = self.consumer.consume(1, timeout)
        if not first or max_records == 1:
            return first
        self._revoked.clear()
        rest = self.consumer.consume(max_records - 1, 0)
        # librdkafka drops records of a revoked assignment within one call, not across two:
        # a first record whose partition was revoked by the second call is the old
        # assignment's (the partition may even be back, to be read again from its commit).
        if (first[0].topic(), first[0].partition()) in self._revoked:
            return rest
        return first + rest

    def revoked(self, partitions: set[tuple[str, int]]) -> None:
        """Tell the fetch that these (topic, partition) were revoked: call it from the
        rebalance callback, which runs inside a fetch on the consumer's thread."""
        self._revoked.update(partitions)

    async def close(self) -> None:
        """Leave the group and release the consumer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.call(self.consumer.close)
        finally:
            self._executor.shutdown(wait=False)
