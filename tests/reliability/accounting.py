"""Event-id accounting for the reliability tests: of the events produced, which reached the
receiver, which lie in the dead-letter topic, and which are lost (neither).

Every reliability test ends by printing one :meth:`Account.line` and asserting nothing is
lost, so a run's log reads as a table of what each fault did to the flow.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message, TopicPartition

from dispatch_kit import headers_of
from producer.config import Settings
from receiver import Receiver
from schemas import constants


@dataclass(frozen=True)
class Account:
    """Where the produced events ended up. Only produced ids count: a receiver or a
    dead-letter topic that also holds other records (poison, other streams) does not skew
    the figures."""

    produced: frozenset[str]
    #: 2xx answers per produced event id.
    answered: Counter[str] = field(default_factory=Counter)
    #: Produced event ids found in the dead-letter topic for the stream.
    dead_lettered: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, produced: Iterable[str], answered: Counter[str], dead_lettered: Iterable[str]
    ) -> Account:
        """The account of ``produced`` from 2xx answers per id and the dead-lettered ids."""
        ids = frozenset(produced)
        mine = Counter({i: n for i, n in answered.items() if i in ids})
        return cls(ids, mine, ids & frozenset(dead_lettered))

    @property
    def delivered(self) -> int:
        """Distinct produced ids answered 2xx at least once."""
        return len(self.answered)

    @property
    def duplicates(self) -> int:
        """2xx answers beyond the first, summed over event ids (at-least-once repeats)."""
        return sum(n - 1 for n in self.answered.values())

    @property
    def lost(self) -> frozenset[str]:
        """Produced ids neither delivered nor dead-lettered."""
        return self.produced - self.answered.keys() - self.dead_lettered

    def line(self) -> str:
        """``produced=N delivered=D duplicates=X dead_lettered=Y lost=Z``."""
        return (
            f"produced={len(self.produced)} delivered={self.delivered} "
            f"duplicates={self.duplicates} dead_lettered={len(self.dead_lettered)} "
            f"lost={len(self.lost)}"
        )

    def assert_nothing_lost(self) -> None:
        """Fail with a sample of the lost ids unless every produced id is accounted for."""
        assert not self.lost, f"{len(self.lost)} lost, e.g. {sorted(self.lost)[:5]}"


class Tally:
    """2xx answers per event id, counted incrementally: a long run's receiver holds tens of
    thousands of requests, and parsing them all again on every check would stall the event
    loop the receiver answers on."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.answered: Counter[str] = Counter()
        self._counted = 0

    def update(self) -> Counter[str]:
        """Count the requests answered since the last call; return the running tally."""
        requests = self.receiver.requests
        for received in requests[self._counted :]:
            if 200 <= received.status < 300:
                self.answered[received.event_id] += 1
        self._counted = len(requests)
        return self.answered


def read_to_end(settings: Settings, topic: str, timeout: float = 30.0) -> list[Message]:
    """Every record of ``topic`` up to the high watermarks seen when called (blocking)."""
    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": f"test-account-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends: dict[int, int] = {}
        starts = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if not ends:
            return []
        consumer.assign(starts)
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    continue
                messages.append(message)
                if message.offset() + 1 >= ends.get(message.partition(), 0):
                    ends.pop(message.partition(), None)
        assert not ends, f"{topic}: partitions {sorted(ends)} not read to their end in {timeout}s"
        return messages
    finally:
        consumer.close()


def dead_letters(settings: Settings, stream_id: str) -> list[Message]:
    """The dead-letter records of one stream (blocking)."""
    return [
        message
        for message in read_to_end(settings, settings.dlq_topic)
        if headers_of(message).get(constants.HEADER_STREAM_ID) == stream_id
    ]


def dead_lettered_ids(settings: Settings, stream_id: str) -> set[str]:
    """Distinct event ids in the dead-letter topic for one stream (blocking)."""
    return {
        headers_of(message).get(constants.HEADER_EVENT_ID, "")
        for message in dead_letters(settings, stream_id)
    }


async def settle(
    receiver: Receiver,
    settings: Settings,
    stream_id: str,
    produced: Iterable[str],
    timeout: float,
) -> Account:
    """Wait until every produced id is delivered or dead-lettered, or ``timeout`` passes;
    return the account either way (the caller prints it before asserting)."""
    ids = frozenset(produced)
    tally = Tally(receiver)
    deadline = time.monotonic() + timeout
    while True:
        dead = await asyncio.to_thread(dead_lettered_ids, settings, stream_id)
        account = Account.of(ids, tally.update(), dead)
        if not account.lost or time.monotonic() > deadline:
            return account
        await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Leftovers:
    """What the flow still holds once every produced event ended: retry-tier records no
    tier consumer has passed yet, and lifecycle records the stream's consumer group never
    committed past (pinned: fetched, perhaps delivered, but never finished)."""

    in_tiers: int
    pinned: int

    def line(self) -> str:
        """``in_tiers=T pinned=P``."""
        return f"in_tiers={self.in_tiers} pinned={self.pinned}"


async def leftovers(settings: Settings, stream_id: str, timeout: float) -> Leftovers:
    """Wait until the stream's lag and every tier's backlog are 0, or ``timeout`` passes
    (commits trail deliveries by up to one commit interval); return what is left."""
    from admin.status import collect_status

    deadline = time.monotonic() + timeout
    while True:
        status = await asyncio.to_thread(collect_status, settings, 10.0)
        left = Leftovers(
            in_tiers=sum(tier.backlog for tier in status.tiers),
            pinned=sum(s.lag for s in status.streams if s.stream.id == stream_id),
        )
        if left == Leftovers(0, 0) or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)
