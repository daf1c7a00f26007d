"""SIGKILL one of an ordered stream's two dispatchers twice while some subjects fail: after
the restarts and the partition moves they cause (the surviving peer loses and regains
partitions whose subjects it holds blocked), each subject's events still never overtake one
another, and none is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dispatch_kit import DispatcherProcess, register, webhook_stream, with_schedule
from ordered_kit import lives, overtakings, places_of, produce, subject_name
from producer.config import Settings
from receiver import Received
from reliability.accounting import dead_lettered_ids, settle
from reliability.restartable_receiver import RestartableReceiver
from reliability.test_dispatcher_kill import errors_in, stop

SUBJECTS = 2_000
#: Every seventh subject answers 503 to its first two requests of each event.
FAILING = {subject_name(n) for n in range(0, SUBJECTS, 7)}


async def test_kill_9_twice_keeps_each_subject_in_order_and_loses_nothing(
    settings: Settings, receiver: RestartableReceiver, tmp_path: Path
) -> None:
    """2,000 subjects, 5 events each, a seventh of them failing twice per event; two
    dispatchers share the stream and one is SIGKILLed at 2,500 and 6,000 requests and
    restarted (each kill and restart moves partitions of the live peer): every request of an
    event comes after its subject's earlier events were delivered (replays after a kill repeat
    delivered events, in order), and every event is delivered or dead-lettered."""
    settings = with_schedule(settings, ["1s", "2s", "4s"])
    events = lives(settings, SUBJECTS)
    places = places_of(events)

    def answer(request: Received, seen: int) -> int:
        subject = str(request.json["data"]["object"]["user_id"])
        return 503 if subject in FAILING and seen < 2 else 200

    receiver.script = answer
    (stream,) = register(
        settings,
        webhook_stream(
            receiver.url(),
            delivery={"ordering": "subject", "max_in_flight": 64, "auto_disable_after": 100_000},
        ),
    )
    log = tmp_path / "dispatcher.log"
    dispatcher = DispatcherProcess(settings, log)
    peer = DispatcherProcess(settings, tmp_path / "peer.log")
    dispatcher.start()
    peer.start()
    t0 = time.monotonic()
    try:
        producing = asyncio.create_task(asyncio.to_thread(produce, settings, events))
        for threshold in (2_500, 6_000):
            try:
                await receiver.wait_until(lambda t=threshold: len(receiver.requests) >= t, 90)
            except AssertionError:
                print(errors_in(log) or log.read_text(errors="replace")[-5000:])
                raise
            dispatcher.kill()
            print(f"\nkilled at {len(receiver.requests)} requests, t={time.monotonic() - t0:.1f}s")
            dispatcher.start()
        await producing
        account = await settle(receiver, settings, stream.id, places, timeout=150)
    finally:
        await asyncio.gather(asyncio.to_thread(stop, dispatcher), asyncio.to_thread(stop, peer))
    print(f"settled t={time.monotonic() - t0:.1f}s: {account.line()}")
    if account.lost:
        print(errors_in(log), errors_in(tmp_path / "peer.log"))
    account.assert_nothing_lost()
    dead = await asyncio.to_thread(dead_lettered_ids, settings, stream.id)
    arrivals = [(r.event_id, 200 <= r.status < 300) for r in receiver.requests]
    assert overtakings(arrivals, places, dead) == []
    assert dead == set(), "two failures per event stay within the three retries"
