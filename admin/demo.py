"""The local demo behind ``make run``: the embedded broker, Tidings' topics, and a few
lifecycle events produced with the library and printed as they are consumed back."""

from __future__ import annotations

import json
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from admin.broker import LocalBroker
from admin.topics import ensure_all
from producer.config import Settings
from producer.producer import EventProducer, codec_for
from schemas import constants
from schemas.cloudevents import render_cloudevent
from schemas.models import make_event
from schemas.samples import sample_object


def run_demo(settings: Settings, *, count: int, port: int) -> int:
    """Run the demo; returns the process exit status."""
    broker = LocalBroker(port=port)
    broker.start()
    settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
    print(f"bootstrap.servers={broker.bootstrap_servers}")
    for name in ensure_all(settings):
        print(f"created topic {name}")

    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": f"tidings-demo-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
        )
    )
    topic = settings.lifecycle_topic
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    start = []
    for partition in partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        start.append(TopicPartition(topic, partition, high))
    consumer.assign(start)

    ids = []
    with EventProducer(settings) as producer:
        for i in range(count):
            event_type = constants.EVENT_TYPES[i % len(constants.EVENT_TYPES)]
            obj = sample_object(event_type, seed=i)
            event = make_event(event_type, obj, tenant=settings.tenant)
            ids.append(producer.emit(event))
        producer.flush()
    print(f"produced {len(ids)} events to {topic}; consuming them back:")

    codec = codec_for(settings)
    seen = 0
    deadline = time.monotonic() + 30
    while seen < len(ids) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        event = codec.decode(message.value() or b"")
        cloud = render_cloudevent(event)
        print(
            f"  partition {message.partition()} offset {message.offset()}: "
            f"{json.dumps(cloud)[:160]}"
        )
        seen += 1
    consumer.close()
    print(f"consumed {seen}/{len(ids)}. Broker left running: `tidings broker stop` stops it.")
    return 0 if seen == len(ids) else 1
