"""The topics Tidings uses, and creating them when absent (``tidings topics ensure``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from producer.config import Settings


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name, partitions, topic-level configuration and replicas (-1: the
    cluster's default.replication.factor)."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication_factor: int = -1


def _retention(value: timedelta) -> str:
    return str(int(value.total_seconds() * 1000))


def required_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic Tidings needs, with partitions, retention and replication from the
    settings (and room for the largest record Tidings writes)."""
    internal = settings.internal_partitions
    specs = [
        TopicSpec(
            settings.lifecycle_topic,
            settings.lifecycle_partitions,
            {"retention.ms": _retention(settings.lifecycle_retention)},
        ),
        # The registry is a table keyed by stream id: compaction keeps the latest state.
        TopicSpec(
            settings.streams_topic,
            1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
        TopicSpec(
            settings.deliveries_topic,
            internal,
            {"retention.ms": _retention(settings.deliveries_retention)},
        ),
        TopicSpec(
            settings.dlq_topic, internal, {"retention.ms": _retention(settings.dlq_retention)}
        ),
    ]
    # A tier's records must outlive their delay plus the time the retry takes.
    for delay in settings.retry_schedule:
        retention = max(delay * 3, settings.lifecycle_retention)
        specs.append(
            TopicSpec(
                settings.retry_topic(delay), internal, {"retention.ms": _retention(retention)}
            )
        )
    common = {"max.message.bytes": str(settings.max_record_bytes)}
    if settings.min_insync_replicas is not None:
        common["min.insync.replicas"] = str(settings.min_insync_replicas)
    replicas = settings.replication_factor or -1
    return [
        TopicSpec(spec.name, spec.partitions, {**spec.config, **common}, replicas) for spec in specs
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                config=spec.config,
            )
            for spec in missing
        ],
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_leaders(admin, [spec.name for spec in missing], timeout)
    return sorted(created)


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """New topics answer 'not leader' until every partition has one: wait for that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            name in topics
            and topics[name].error is None
            and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in names
        ) and _partitions_serve(admin, {name: topics[name].partitions for name in names}):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics without a leader after {timeout}s: {names}")


def _partitions_serve(
    admin: AdminClient, partitions: Mapping[str, Iterable[int]], timeout: float = 5.0
) -> bool:
    """Whether every partition answers an offset request. A KRaft broker publishes a new
    partition's leader in its metadata a moment before it serves that partition, so metadata
    alone still lets the first request fail with 'not leader'."""
    futures = admin.list_offsets(
        {
            TopicPartition(name, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for name, numbers in partitions.items()
            for p in numbers
        },
        request_timeout=timeout,
    )
    try:
        for future in futures.values():
            future.result()
    except KafkaException:
        return False
    return True


def ensure_all(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create every topic Tidings needs on the configured cluster; return the names created."""
    admin = AdminClient(settings.kafka_config())
    return ensure_topics(admin, required_topics(settings), timeout)
