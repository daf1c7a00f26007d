"""Test helpers that read topics of the real broker directly."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from admin.broker import LocalBroker, free_port
from dispatcher.delivery_log import attempt_lines
from dispatcher.secret_box import generate_key
from producer.config import Settings, load_settings

#: One secrets key for the session's settings (and its child processes).
SESSION_SECRETS_KEY = generate_key()


def read_topic(
    settings: Settings,
    topic: str,
    count: int,
    timeout: float = 30.0,
    units: Callable[[Message], int] = lambda _m: 1,
) -> list[Message]:
    """Read ``count`` records of ``topic`` from the beginning of every partition, waiting up
    to ``timeout`` seconds for them to arrive; fail with what arrived if they do not.
    ``units`` counts what a record holds when that is not one (delivery-log batches)."""
    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": f"test-reader-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Message] = []
        arrived = 0
        deadline = time.monotonic() + timeout
        while arrived < count and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    messages.append(message)
                    arrived += units(message)
        assert arrived >= count, f"{arrived} of {count} records arrived in {topic}"
        return messages
    finally:
        consumer.close()


def topic_size(settings: Settings, topic: str) -> int:
    """How many records the topic holds (sum of high watermarks minus low)."""
    consumer = Consumer(settings.kafka_config(**{"group.id": f"size-{uuid.uuid4().hex}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total
    finally:
        consumer.close()


async def aread_topic(
    settings: Settings,
    topic: str,
    count: int,
    timeout: float = 30.0,
    units: Callable[[Message], int] = lambda _m: 1,
) -> list[Message]:
    """:func:`read_topic` on a thread, so an in-process dispatcher keeps running meanwhile."""
    import asyncio

    return await asyncio.to_thread(read_topic, settings, topic, count, timeout, units)


def attempts_in(message: Message) -> int:
    """How many attempts a delivery-log record holds (one per line)."""
    return len(attempt_lines(message.value() or b""))


def running_broker(data_dir: Path) -> Iterator[LocalBroker]:
    """A real single-node KRaft broker on free ports in ``data_dir``, stopped afterwards;
    its log is printed when it fails to start."""
    broker = LocalBroker(port=free_port(), data_dir=data_dir)
    try:
        broker.start()
    except Exception:
        print(f"--- broker log ({broker.log_file}) ---\n{broker.tail_log(200)}")
        broker.stop()
        raise
    yield broker
    broker.stop()


def fresh_settings(
    monkeypatch: pytest.MonkeyPatch, bootstrap_servers: str, **overrides: Any
) -> Settings:
    """Test settings for the brokers at ``bootstrap_servers``: a topic prefix no other test
    uses, small topics, a short retry schedule, and no TIDINGS_* variable of the machine
    (topics are not created here)."""
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)
    defaults: dict[str, Any] = {
        "topic_prefix": f"t{uuid.uuid4().hex[:10]}.",
        "lifecycle_partitions": 3,
        "internal_partitions": 2,
        "retry_schedule": ["1s", "2s"],
        "metrics_port": 0,
        "destination_allowlist": ["127.0.0.1"],
        "secrets_key": SESSION_SECRETS_KEY,
    }
    return load_settings(bootstrap_servers=bootstrap_servers, **{**defaults, **overrides})
