"""The account of the hostile-input tests: per stream, of the events produced, how many were
delivered, wait in a retry tier, were dead-lettered or are lost, and how many records its
consumer group has fetched but never finished (pinned: the committed offset stays behind)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from dispatcher.delivery_log import AttemptRecord, attempt_lines
from producer.config import Settings
from producer.durations import format_duration
from reliability.accounting import read_to_end
from schemas import constants
from schemas.record_headers import RecordHeaders


def stream_group(settings: Settings, stream_id: str) -> str:
    """The consumer group of one stream."""
    return settings.topic(constants.STREAM_GROUP_PREFIX + stream_id)


def tier_groups(settings: Settings) -> dict[str, str]:
    """Tier topic → its consumer group."""
    return {
        settings.retry_topic(delay): settings.topic(
            constants.RETRY_TOPIC_PREFIX + format_duration(delay)
        )
        for delay in settings.retry_schedule
    }


def uncommitted(settings: Settings, group: str, topic: str) -> int:
    """Records of ``topic`` after ``group``'s committed offsets (the whole partition where
    nothing is committed)."""
    consumer = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], 10)
        behind = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), 10)
            start = tp.offset if tp.offset >= 0 else low
            behind += max(high - start, 0)
        return behind
    finally:
        consumer.close()


def wait_committed(settings: Settings, group: str, topic: str, timeout: float = 30.0) -> int:
    """Wait until ``group`` has committed all of ``topic``; returns what is still behind."""
    deadline = time.monotonic() + timeout
    while (behind := uncommitted(settings, group, topic)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return behind


def dead_letters_by_stream(settings: Settings) -> dict[str, dict[str, str]]:
    """Stream id → event id → dead-letter reason."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for message in read_to_end(settings, settings.dlq_topic):
        headers = RecordHeaders.of(message)
        stream = headers.text(constants.HEADER_STREAM_ID)
        found[stream][headers.text(constants.HEADER_EVENT_ID)] = headers.text(
            constants.HEADER_DLQ_REASON
        )
    return found


def tier_records_by_stream(settings: Settings) -> dict[str, Counter[str]]:
    """Stream id → event id → how many retry-tier records it has (one per retried attempt)."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for topic in tier_groups(settings):
        for message in read_to_end(settings, topic):
            headers = RecordHeaders.of(message)
            found[headers.text(constants.HEADER_STREAM_ID)][
                headers.text(constants.HEADER_EVENT_ID)
            ] += 1
    return found


def attempts_by_stream(settings: Settings) -> dict[str, dict[str, list[AttemptRecord]]]:
    """Stream id → event id → its attempts in the delivery log, in log order."""
    found: dict[str, dict[str, list[AttemptRecord]]] = defaultdict(lambda: defaultdict(list))
    for message in read_to_end(settings, settings.deliveries_topic):
        for line in attempt_lines(message.value() or b""):
            attempt = AttemptRecord.from_record(line)
            found[attempt.stream_id][attempt.event_id].append(attempt)
    return found


@dataclass(frozen=True)
class StreamAccount:
    """One stream's line of the account."""

    name: str
    produced: int
    delivered: int
    in_tiers: int
    dead_lettered: int
    pinned: int

    @property
    def lost(self) -> int:
        """Produced events with no end at all."""
        return self.produced - self.delivered - self.in_tiers - self.dead_lettered

    def line(self) -> str:
        """``name: produced=… delivered=… in_tiers=… dead_lettered=… lost=… pinned=…``."""
        return (
            f"{self.name}: produced={self.produced} delivered={self.delivered} "
            f"in_tiers={self.in_tiers} dead_lettered={self.dead_lettered} lost={self.lost} "
            f"pinned={self.pinned}"
        )
