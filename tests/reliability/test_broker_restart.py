"""The Kafka broker stops (SIGTERM) and starts again mid-run: the dispatcher rides it out in
the same process, without a restart of its own, and loses no event."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from admin.broker import LocalBroker
from dispatch_kit import register, running_dispatcher, webhook_stream
from producer.config import Settings
from reliability.accounting import settle
from reliability.restartable_receiver import RestartableReceiver
from reliability.steady_producer import SteadyProducer

DOWN_SECONDS = 4.0


@pytest.fixture
def kafka_broker(dedicated_broker: LocalBroker) -> LocalBroker:
    """This module's tests stop the broker: the ``settings`` fixture points at a dedicated
    one instead of the session's shared broker."""
    return dedicated_broker


async def test_broker_restart_mid_run_loses_nothing_and_needs_no_dispatcher_restart(
    settings: Settings, dedicated_broker: LocalBroker, receiver: RestartableReceiver
) -> None:
    """Events flow continuously (10% answered 503, so the retry tiers work too) while the
    broker is stopped with SIGTERM, kept down 4 s and started again on the same port and data
    directory: the same in-process dispatcher delivers everything produced before, during
    and after the outage, or dead-letters it."""
    seed = random.SystemRandom().randrange(2**32)
    print(f"\nseed={seed}")
    rng = random.Random(seed)
    receiver.script = lambda _request, _seen: 503 if rng.random() < 0.1 else 200
    (stream,) = register(settings, webhook_stream(receiver.url()))
    producer = SteadyProducer(settings, per_second=400)
    async with running_dispatcher(settings) as dispatcher:
        workers = [task for _worker, task in [*dispatcher._workers.values(), *dispatcher._tiers]]
        producer.start()
        await receiver.wait_until(lambda: len(receiver.requests) >= 1_000, 60)
        started = time.monotonic()
        await asyncio.to_thread(dedicated_broker.stop)
        stopped = time.monotonic()
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(dedicated_broker.start)
        back = time.monotonic()
        at_restart = len(receiver.requests)
        await receiver.wait_until(lambda: len(receiver.requests) >= at_restart + 1_000, 90)
        recovered = time.monotonic()
        ids = await asyncio.to_thread(producer.stop)
        account = await settle(receiver, settings, stream.id, ids, timeout=90)
        alive = [not task.done() for task in workers]
        same_workers = workers == [
            task for _worker, task in [*dispatcher._workers.values(), *dispatcher._tiers]
        ]
    print(
        f"broker: SIGTERM took {stopped - started:.1f}s, down {back - stopped:.1f}s, "
        f"deliveries resumed {recovered - back:.1f}s after it was back"
    )
    print(f"broker restart: {account.line()}")
    account.assert_nothing_lost()
    assert all(alive), "every consumer task ran through the outage"
    assert same_workers, "no consumer was replaced"
