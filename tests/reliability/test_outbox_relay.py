"""The outbox relay under fire: concurrent writers with rollbacks while the relay is killed
with SIGKILL, and a standby relay taking over. Prints an exact account."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import psycopg

from kafka_testkit import read_topic, topic_size
from outbox_kit import (
    Ledger,
    account,
    lock_holders,
    read_until_complete,
    relay_process,
    run_writers,
    seed_users,
)
from producer.config import Settings
from producer.outbox import Outbox, install
from producer.producer import codec_for

MUTATIONS = 4000
WRITERS = 8
SUBJECTS = [f"auth0|{n}" for n in range(300)]


async def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_writers_with_rollbacks_and_three_relay_kills_lose_nothing(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """4,000 mutations from 8 concurrent writers, 10% rolled back after writing their event,
    the relay killed with SIGKILL three times mid-run: every committed event reaches the
    topic in commit order per subject, no rolled-back event does, and every duplicate
    carries the id first seen for its event."""
    install(pg_dsn)
    seed_users(pg_dsn, SUBJECTS)
    outbox = Outbox(settings)
    ledger = Ledger()
    relay = relay_process(pg_dsn, settings, tmp_path / "relay.log").start()
    topic = settings.lifecycle_topic
    try:
        writers = run_writers(pg_dsn, outbox, ledger, MUTATIONS, SUBJECTS, WRITERS, rate=600)
        for threshold in (600, 1400, 2200):
            await _until(lambda t=threshold: topic_size(settings, topic) >= t, 60, relay.log_tail())
            relay.kill()
            relay.start()
        for writer in writers:
            await asyncio.to_thread(writer.join)
        messages = await asyncio.to_thread(read_until_complete, settings, set(ledger.committed))
    finally:
        relay.kill()
    result = account(messages, ledger, codec_for(settings))
    print(f"\noutbox kill x3: rolled_back={len(ledger.rolled_back)} {result.line()}")
    assert len(ledger.rolled_back) > MUTATIONS * 0.05
    assert result.lost == 0
    assert result.phantom == 0
    assert result.out_of_order == []
    assert result.new_ids_for_old_events == 0
    assert result.distinct == result.committed


async def test_two_relays_one_active_and_takeover_within_5s(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """Two relays: exactly one holds the lock and publishes; SIGKILL it and the other
    publishes an event committed right after the kill within 5 seconds."""
    install(pg_dsn)
    outbox = Outbox(settings)
    first = relay_process(pg_dsn, settings, tmp_path / "first.log").start()
    second = relay_process(pg_dsn, settings, tmp_path / "second.log").start()
    relays = {first.pid: first, second.pid: second}
    try:
        await _until(lambda: len(lock_holders(pg_dsn)) == 2, 30, first.log_tail())
        holders = lock_holders(pg_dsn)
        active = [pid for pid, granted in holders if granted]
        assert len(active) == 1, holders
        standby = next(pid for pid in relays if pid != active[0])
        killed_at = time.monotonic()
        relays[active[0]].kill()
        with psycopg.connect(pg_dsn, autocommit=True) as conn, conn.transaction():
            event_id = outbox.on(conn).user_created({"user_id": f"auth0|{uuid.uuid4().hex}"})
        [message] = await asyncio.to_thread(read_topic, settings, settings.lifecycle_topic, 1, 10)
        took = time.monotonic() - killed_at
        assert lock_holders(pg_dsn) == [(standby, True)]
    finally:
        first.kill()
        second.kill()
    print(f"\ntakeover: event published {took:.2f} s after the active relay was killed")
    assert dict(message.headers() or [])["tidings-event-id"] == event_id.encode()
    assert took < 5.0
