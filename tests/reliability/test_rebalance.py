"""Rebalances under load: a second dispatcher joins and leaves a stream's consumer groups
while deliveries are in flight; no consumer ever commits a partition it does not hold, and no
event is lost."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from dispatch_kit import register, running_dispatcher, until, webhook_stream
from dispatcher import kafka_io
from producer.config import Settings
from reliability.accounting import settle
from reliability.restartable_receiver import RestartableReceiver
from reliability.steady_producer import SteadyProducer
from schemas import constants

Partitions = set[tuple[str, int]]

#: Times the second dispatcher joins and leaves.
CYCLES = 2
#: Deliveries in flight per stream consumer: with the receiver's 30 ms, 200 a second, fewer
#: than the producer's 300, so each consumer lags and librdkafka's queue always holds
#: records when a revocation arrives (the records a fetch can return across it).
MAX_IN_FLIGHT = 6
#: Seconds the receiver holds an answer; while a dispatcher joins or leaves, longer than
#: the rebalance takes, so deliveries finish after their partitions were revoked and given
#: out again (to the other dispatcher, or back to the same one).
ANSWER, SLOW_ANSWER = 0.03, 1.0
PARTITIONS = 3


@dataclass
class Watched:
    """What one real consumer held and committed, in the order it happened."""

    group: str
    held: Partitions = field(default_factory=set)
    #: (topic, partition) committed while not held, with the offset: must stay empty.
    foreign: list[tuple[str, int, int]] = field(default_factory=list)
    commits: int = 0
    rebalances: int = 0


class WatchedConsumer:
    """A confluent-kafka consumer that records its assignment (from the rebalance callbacks)
    and checks every commit against it; everything else goes to the real consumer."""

    def __init__(self, real: Consumer, watched: Watched, lock: threading.Lock) -> None:
        self._real = real
        self._watched = watched
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        """Subscribe with callbacks that record the assignment around the worker's own."""
        watched = self._watched

        def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_assign(self, partitions)
            with self._lock:
                watched.held |= {(tp.topic, tp.partition) for tp in partitions}
                watched.rebalances += 1

        def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_revoke(self, partitions)  # may commit: the partitions are still held
            with self._lock:
                watched.held -= {(tp.topic, tp.partition) for tp in partitions}

        self._real.subscribe(topics, on_assign=assigned, on_revoke=revoked)

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        """Check the commit against what is held, then commit."""
        with self._lock:
            self._watched.commits += 1
            self._watched.foreign += [
                (tp.topic, tp.partition, tp.offset)
                for tp in offsets
                if (tp.topic, tp.partition) not in self._watched.held
            ]
        return self._real.commit(offsets=offsets, asynchronous=asynchronous)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> list[Watched]:
    """Every consumer the dispatchers create from now on, watched."""
    consumers: list[Watched] = []
    lock = threading.Lock()
    original: Callable[..., None] = kafka_io.AsyncConsumer.__init__

    def init(self: kafka_io.AsyncConsumer, config: dict[str, Any], name: str) -> None:
        original(self, config, name)
        entry = Watched(str(config.get("group.id")))
        with lock:
            consumers.append(entry)
        self.consumer = WatchedConsumer(self.consumer, entry, lock)  # type: ignore[assignment]

    monkeypatch.setattr(kafka_io.AsyncConsumer, "__init__", init)
    return consumers


async def test_a_peer_joining_and_leaving_under_load_commits_nothing_it_lost(
    settings: Settings,
    receiver: RestartableReceiver,
    watched: list[Watched],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While events flow at 300/s, faster than one dispatcher delivers them (6 in flight,
    30 ms per answer), a second dispatcher joins and leaves the groups twice: four
    rebalances of each group, during which the receiver holds answers for 1 s so that
    deliveries finish after their partitions were revoked and handed out again. No consumer
    ever commits a partition it does not hold at that moment, the late completions end
    without an error (they are ignored, not applied to the new assignment), and every
    event is delivered."""
    receiver.delay = ANSWER
    (stream,) = register(
        settings, webhook_stream(receiver.url(), delivery={"max_in_flight": MAX_IN_FLIGHT})
    )
    stream_group = settings.topic(constants.STREAM_GROUP_PREFIX + stream.id)

    assert settings.lifecycle_partitions == PARTITIONS

    def holding(consumers: list[Watched]) -> bool:
        return all(c.held for c in consumers if c.group == stream_group)

    producer = SteadyProducer(settings, per_second=300)
    async with running_dispatcher(settings):
        await until(lambda: any(c.held for c in watched if c.group == stream_group), 30)
        first = [c for c in watched if c.group == stream_group]
        producer.start()
        try:
            await receiver.wait_until(lambda: len(receiver.requests) >= 300, 30)
            for _ in range(CYCLES):
                before = len(watched)
                receiver.delay = SLOW_ANSWER
                async with running_dispatcher(settings):
                    await until(lambda n=before: holding(watched[n:]) and holding(first), 30)
                    receiver.delay = ANSWER
                    seen = len(receiver.requests)
                    await receiver.wait_until(lambda s=seen: len(receiver.requests) >= s + 150, 30)
                    receiver.delay = SLOW_ANSWER
                await until(lambda: sum(len(c.held) for c in first) == PARTITIONS, 30)
                receiver.delay = ANSWER
                seen = len(receiver.requests)
                await receiver.wait_until(lambda s=seen: len(receiver.requests) >= s + 150, 30)
        finally:
            ids = await asyncio.to_thread(producer.stop)
        account = await settle(receiver, settings, stream.id, ids, timeout=60)
    stream_consumers = [c for c in watched if c.group == stream_group]
    rebalances = sum(c.rebalances for c in stream_consumers)
    commits = sum(c.commits for c in watched)
    foreign = [(c.group, f) for c in watched for f in c.foreign]
    print(
        f"\n{len(stream_consumers)} stream consumers, {rebalances} assignments, {commits} commits "
        f"checked, {len(foreign)} of partitions not held"
    )
    print(f"rebalances under load: {account.line()}")
    assert rebalances >= 1 + 3 * CYCLES, "the groups rebalanced while events flowed"
    assert not foreign, f"committed partitions it did not hold: {foreign[:5]}"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[:3]
    account.assert_nothing_lost()
