"""Retry tiers stay in due order across streams: a receiver's ``Retry-After`` never lets
one stream's record hold up another stream's earlier-due record in the same tier partition.
``Retry-After`` only chooses a (later) tier; inside a tier every record waits exactly the
tier's delay, so each partition is in due order. Real broker, real dispatcher process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dispatch_kit import DispatcherProcess, produce_events, register, webhook_stream, with_schedule
from producer.config import Settings
from reliability import hostile_receiver as hostile

EVENTS = 10
FIRST_TIER_S = 2.0


async def test_a_stretched_retry_never_delays_another_streams_earlier_due_retry(
    settings: Settings, tmp_path: Path
) -> None:
    """Stream A answers ``503 Retry-After: 100`` at once; stream B answers each event's first
    request with a 503 half a second later, so B's retry lands behind A's in the same tier
    partition (same subject, same key). B's retries still come after the 2 s tier delay (plus
    its grain and scheduling), not after A's stretched wait; A's went to the later tier."""
    settings = with_schedule(settings, ["2s", "30s"])
    receiver = await hostile.HostileReceiver(
        {
            "a": hostile.retry_after("100"),
            "b": hostile.fail_once_slowly(0.5),
        }
    ).start()
    register(
        settings,
        webhook_stream(receiver.url("a"), name="a"),
        webhook_stream(receiver.url("b"), name="b"),
    )
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    dispatcher.start()
    try:
        ids = await asyncio.to_thread(produce_events, settings, EVENTS)
        async with asyncio.timeout(60):
            while not all(_b_requests(receiver, e) >= 2 for e in ids):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # the receiver records requests; nothing to await
        a_retried = [e for (p, e, _t) in receiver.seen if p == "a"]
    finally:
        dispatcher.terminate()
        await receiver.stop()
    waits = [_b_retry_wait(receiver, e) for e in ids]
    print(f"\nstream b's retries came {min(waits):.2f}-{max(waits):.2f}s after their failures")
    # B failed 0.5 s after its request started; its retry is due 2 s after that failure.
    assert max(waits) < FIRST_TIER_S + 0.5 + 1.0, waits
    assert len(a_retried) == len(ids), "A's retries must wait in the 30 s tier, not the 2 s one"


def _b_requests(receiver: hostile.HostileReceiver, event: str) -> int:
    return sum(1 for p, e, _t in receiver.seen if p == "b" and e == event)


def _b_retry_wait(receiver: hostile.HostileReceiver, event: str) -> float:
    """Seconds from the start of B's first request for ``event`` to its second."""
    first, second = [t for p, e, t in receiver.seen if p == "b" and e == event][:2]
    return second - first
