"""Crashes and signals: a real dispatcher process killed with SIGKILL or stopped with
SIGTERM loses nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

from dispatch_kit import DispatcherProcess, produce_events, register, webhook_stream
from producer.config import Settings
from receiver import Receiver


async def test_kill_9_mid_run_then_restart_delivers_everything(
    settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    """SIGKILL twice while 3,000 events flow (10% answered 503): after restarts every event
    reaches the receiver at least once; duplicates are counted, not lost events."""
    receiver.script = lambda r, seen: 503 if seen == 0 and hash(r.event_id) % 10 == 0 else 200
    register(settings, webhook_stream(receiver.url()))
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    dispatcher.start()
    ids: list[str] = []
    producer = threading.Thread(target=lambda: ids.extend(produce_events(settings, 3000)))
    try:
        producer.start()
        for threshold in (500, 1500):
            await receiver.wait_until(lambda t=threshold: len(receiver.requests) >= t, 60)
            dispatcher.kill()
            dispatcher.start()
        await asyncio.to_thread(producer.join)
        await receiver.wait_until(lambda: receiver.delivered_ids() >= set(ids), timeout=90)
    finally:
        dispatcher.kill()
    counts = Counter(r.event_id for r in receiver.delivered())
    duplicates = sum(n - 1 for n in counts.values())
    print(f"produced={len(ids)} delivered={len(counts)} duplicates={duplicates} lost=0")
    assert set(counts) == set(ids)


async def test_sigterm_finishes_in_flight_work_and_exits_in_bound(
    settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    """SIGTERM with slow deliveries in flight: the process exits 0 within the bound, having
    committed what it finished; a restart delivers the rest without loss."""
    receiver.delay = 0.2
    register(settings, webhook_stream(receiver.url(), delivery={"max_in_flight": 20}))
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    dispatcher.start()
    try:
        ids = produce_events(settings, 400)
        await receiver.wait_until(lambda: len(receiver.requests) >= 50, 30)
        started = time.monotonic()
        status = await asyncio.to_thread(dispatcher.terminate)
        took = time.monotonic() - started
        before_restart = Counter(r.event_id for r in receiver.delivered())
        assert status == 0, (tmp_path / "dispatcher.log").read_text()[-3000:]
        assert took < 30
        assert len(before_restart) < len(ids), "stopped before finishing everything"
        dispatcher.start()
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids), timeout=60)
    finally:
        dispatcher.kill()
    counts = Counter(r.event_id for r in receiver.delivered())
    repeated = sum(n - 1 for n in counts.values())
    print(f"sigterm: produced={len(ids)} duplicates={repeated} exit_s={took:.2f}")
    assert repeated <= 20, "a graceful stop repeats at most the deliveries in flight"
