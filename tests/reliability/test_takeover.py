"""Two dispatcher processes share a stream through its consumer groups; when one is killed
with SIGKILL, the other takes over its partitions once the session times out, losing
nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from admin.status import collect_status
from dispatch_kit import DispatcherProcess, register, webhook_stream, with_schedule
from producer.config import Settings
from reliability.accounting import settle
from reliability.restartable_receiver import RestartableReceiver
from reliability.steady_producer import SteadyProducer
from schemas import constants


def assignments(settings: Settings, group: str) -> list[set[int]]:
    """The partitions each live member of ``group`` holds; none while the group is being
    created or its coordinator moves (blocking)."""
    admin = AdminClient(settings.kafka_config())
    try:
        description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except KafkaException:  # NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS: ask again
        return []
    return [{tp.partition for tp in m.assignment.topic_partitions} for m in description.members]


async def until_assigned(
    settings: Settings, group: str, expected: list[set[int]], timeout: float
) -> float:
    """Wait until the group's members hold exactly ``expected`` (in any order); return the
    seconds it took."""
    started = time.monotonic()
    want = sorted(sorted(p) for p in expected)
    while True:
        held = await asyncio.to_thread(assignments, settings, group)
        if sorted(sorted(p) for p in held) == want:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{group}: {held}, not {expected}"
        await asyncio.sleep(0.5)


async def test_survivor_takes_over_the_partitions_of_a_killed_peer(
    settings: Settings, receiver: RestartableReceiver, tmp_path: Path
) -> None:
    """Two processes split the 3 lifecycle partitions and the 2 partitions of the retry tier
    while events flow steadily; the receiver answers 503 for 1.5 s just before one process is
    killed with SIGKILL, so both tier partitions hold records that fall due only after the
    10 s session timeout. The survivor then holds every partition, including the tier
    partition it had paused before the rebalance, and every event is delivered or
    dead-lettered with no retry backlog left behind."""
    settings = with_schedule(settings, ["15s"])
    failing = False
    receiver.script = lambda _request, _seen: 503 if failing else 200
    (stream,) = register(settings, webhook_stream(receiver.url()))
    stream_group = settings.topic(constants.STREAM_GROUP_PREFIX + stream.id)
    tier_group = settings.topic(constants.RETRY_TOPIC_PREFIX + "15s")
    victim = DispatcherProcess(settings, tmp_path / "victim.log")
    survivor = DispatcherProcess(settings, tmp_path / "survivor.log")
    victim.start()
    survivor.start()
    producer = SteadyProducer(settings, per_second=300)
    try:
        # Both hold partitions before any event exists, so the kill takes work away.
        await until_assigned(settings, stream_group, [{0, 1}, {2}], timeout=60)
        await until_assigned(settings, tier_group, [{0}, {1}], timeout=30)
        producer.start()
        await receiver.wait_until(lambda: len(receiver.requests) >= 1_500, 60)
        failing = True
        await asyncio.sleep(1.5)
        failing = False
        victim.kill()
        killed_at = len(receiver.requests)
        took = await until_assigned(settings, stream_group, [{0, 1, 2}], timeout=30)
        await until_assigned(settings, tier_group, [{0, 1}], timeout=10)
        print(
            f"\nkilled one of two at {killed_at} requests; the survivor held all after {took:.1f}s"
        )
        # Traffic goes on through and after the takeover.
        after = len(receiver.requests)
        await receiver.wait_until(lambda: len(receiver.requests) >= after + 1_500, 60)
        ids = await asyncio.to_thread(producer.stop)
        account = await settle(receiver, settings, stream.id, ids, timeout=60)
        status = await asyncio.to_thread(collect_status, settings, 10.0)
        assert survivor.process.poll() is None, "the survivor kept running"
    finally:
        victim.kill()
        survivor.kill()
    retried = sum(1 for r in receiver.requests if r.status == 503)
    backlog = status.tiers[0].backlog
    print(f"answered 503 before the kill: {retried}; retry backlog after: {backlog}")
    print(f"takeover after kill -9: {account.line()}")
    account.assert_nothing_lost()
    assert retried > 0, "the tier held records through the takeover"
    assert backlog == 0, "nothing stays parked in the tier"
