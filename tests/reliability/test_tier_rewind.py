"""A retry tier rewinds a partition whose head is not yet due; records of that partition
fetched before the rewind, still later in the same batch, must wait for the re-fetch even
when the partition's resume timer fires before the batch is finished."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import TopicPartition

from dispatcher.retry_tiers import TierWorker
from producer.config import Settings
from schemas import constants

STREAM_ID = "est_" + "A" * constants.ID_RANDOM_LENGTH


@dataclass
class Record:
    """Just enough of a confluent-kafka Message for the tier worker."""

    topic_name: str
    partition_number: int
    offset_number: int
    due: datetime

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number

    def topic(self) -> str:
        return self.topic_name

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (constants.HEADER_STREAM_ID, STREAM_ID.encode()),
            (constants.HEADER_EVENT_ID, f"evt_{self.offset_number}".encode()),
            (constants.HEADER_ATTEMPT, b"1"),
            (constants.HEADER_DUE_AT, str(int(self.due.timestamp() * 1000)).encode()),
        ]

    def value(self) -> bytes:
        return b""

    def key(self) -> bytes:
        return b"k"


@dataclass
class FakeConsumer:
    """Records pause, seek and resume calls instead of talking to Kafka."""

    calls: list[tuple[str, int, int]] = field(default_factory=list)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls += [("pause", tp.partition, tp.offset) for tp in partitions]

    def seek(self, tp: TopicPartition) -> None:
        self.calls.append(("seek", tp.partition, tp.offset))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls += [("resume", tp.partition, tp.offset) for tp in partitions]

    def commit(self, **_kwargs: Any) -> None:
        """Nothing to commit to."""


class FakeEngine:
    """Remembers which records were attempted."""

    def __init__(self) -> None:
        self.attempted: list[str] = []

    async def process(self, job: Any, _runtime: Any) -> None:
        self.attempted.append(job.event_id)


async def test_records_after_a_rewind_in_the_same_batch_wait_for_the_refetch(
    settings: Settings,
) -> None:
    """Batch [p0@10 not due, p0@11 due]: the timer resumes p0 between the two (it fires
    while the worker waits on its in-flight limit); p0@11 must still be skipped, so the
    re-fetch from offset 10 is tracked in order instead of failing the worker."""
    engine = FakeEngine()
    worker = TierWorker(
        settings,
        engine,  # type: ignore[arg-type]
        timedelta(seconds=1),
        lambda _stream_id: object(),  # type: ignore[arg-type,return-value]
        lambda _stream_id: False,
    )
    consumer = FakeConsumer()
    worker.consumer = type("Wrapped", (), {"consumer": consumer})()  # type: ignore[assignment]
    topic = worker.topic
    worker.tracker.assign(topic, 0)  # as on_assign does when the group hands p0 over
    now = datetime.now(UTC)
    soon, past = now + timedelta(milliseconds=20), now - timedelta(seconds=1)

    rewound: set[int] = set()  # one batch's rewound partitions, as run() keeps them
    await worker._handle(Record(topic, 0, 10, soon), rewound)
    worker._resume(0)  # the resume timer fires mid-batch
    await worker._handle(Record(topic, 0, 11, past), rewound)  # fetched before the rewind

    rewound = set()  # the next batch: after the rewind, fetched again from offset 10
    for offset in (10, 11):
        await worker._handle(Record(topic, 0, offset, past), rewound)
    await worker.drain(5)

    assert ("seek", 0, 10) in consumer.calls
    assert engine.attempted == ["evt_10", "evt_11"]
