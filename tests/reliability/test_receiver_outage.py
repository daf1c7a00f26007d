"""A receiver outage longer than the first retry tiers: once it is back, everything is
delivered and the tiers drain to an empty backlog; nothing stays parked."""

from __future__ import annotations

import asyncio
import time

from admin.status import Status, collect_status
from dispatch_kit import produce_events, register, running_dispatcher, webhook_stream, with_schedule
from kafka_testkit import topic_size
from producer.config import Settings
from reliability.accounting import settle
from reliability.restartable_receiver import RestartableReceiver

EVENTS = 3_000
#: Longer than the 1 s and 2 s tiers together, even with each tier attempt coming about 1 s
#: after its due time (measured: the pause/seek/resume cycle of the tier consumer).
OUTAGE_SECONDS = 7.0


async def drained_status(settings: Settings, timeout: float) -> Status:
    """The status once the stream's lag and every tier's backlog are 0 (or the last one
    read when ``timeout`` passes first)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await asyncio.to_thread(collect_status, settings, 10.0)
        drained = all(s.lag == 0 for s in status.streams) and all(
            t.backlog == 0 for t in status.tiers
        )
        if drained or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.5)


async def test_receiver_down_longer_than_the_first_tiers_then_everything_drains(
    settings: Settings, receiver: RestartableReceiver
) -> None:
    """The receiver refuses connections for 7 s (longer than the 1 s and 2 s tiers together)
    while 3,000 events flow: after it comes back every event is delivered, none is
    dead-lettered, and the stream's lag and every tier's backlog return to 0."""
    settings = with_schedule(settings, ["1s", "2s", "4s", "8s"])
    # Attempts during an outage fail at once (connection refused), so the default
    # auto_disable_after (500 consecutive failures) would disable a busy stream within the
    # first second: this test is about the tiers, so the stream must stay enabled.
    (stream,) = register(
        settings, webhook_stream(receiver.url(), delivery={"auto_disable_after": 1_000_000})
    )
    async with running_dispatcher(settings):
        producing = asyncio.create_task(asyncio.to_thread(produce_events, settings, EVENTS))
        await receiver.wait_until(lambda: len(receiver.requests) >= 300, 60)
        await receiver.go_down()
        await asyncio.sleep(OUTAGE_SECONDS)
        await receiver.come_back()
        ids = await producing
        account = await settle(receiver, settings, stream.id, ids, timeout=60)
        status = await drained_status(settings, timeout=30)
    used = {f"{t.delay.total_seconds():g}s": topic_size(settings, t.topic) for t in status.tiers}
    print(f"\ntier records written: {used}")
    print(f"lag={[s.lag for s in status.streams]} backlog={[t.backlog for t in status.tiers]}")
    print(f"receiver outage {OUTAGE_SECONDS:g}s: {account.line()}")
    account.assert_nothing_lost()
    assert not account.dead_lettered, "an outage shorter than the schedule dead-letters nothing"
    assert all(used[tier] > 0 for tier in ("1s", "2s", "4s")), "the outage outlasted 1s+2s"
    assert [s.lag for s in status.streams] == [0]
    assert [t.backlog for t in status.tiers] == [0, 0, 0, 0]
