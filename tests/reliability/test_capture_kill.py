"""Change capture killed with SIGKILL mid-run loses nothing, and its repeats keep their ids."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from pathlib import Path

from capture_kit import (
    CAPTURE_MAPPING,
    CAPTURE_USERS_DDL,
    capture_process,
    copy_users_script,
    drop_slot,
    psql,
    wait_for_slot,
)
from kafka_testkit import topic_size
from outbox_kit import (
    event_id_header,
    read_until_complete,
)
from producer.config import Settings

USERS = 6_000


async def test_kill_9_mid_run_loses_no_change(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """6,000 users COPYed by psql in 24 transactions while the capture process is killed
    with SIGKILL twice: every user's user.created arrives, and any repeat carries the id of
    the first."""
    psql(pg_dsn, CAPTURE_USERS_DDL)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(CAPTURE_MAPPING)
    capture = capture_process(pg_dsn, settings, mapping, tmp_path / "capture.log").start()
    topic = settings.lifecycle_topic
    try:
        wait_for_slot(pg_dsn, "tidings_capture", capture)
        writer = threading.Thread(
            target=psql, args=(pg_dsn, copy_users_script(1, USERS, per_transaction=250))
        )
        writer.start()
        for threshold in (1000, 3000):
            deadline = time.monotonic() + 60
            while topic_size(settings, topic) < threshold:
                assert time.monotonic() < deadline, capture.log_tail()
                await asyncio.sleep(0.02)
            capture.kill()
            capture.start()
        await asyncio.to_thread(writer.join)
        expected = {f"db|{n}" for n in range(1, USERS + 1)}
        messages = await asyncio.to_thread(
            read_until_complete, settings, expected, lambda m: m.key().decode()
        )
    finally:
        capture.kill()
        drop_slot(pg_dsn)
    ids_of: dict[str, set[str]] = defaultdict(set)
    for message in messages:
        ids_of[message.key().decode()].add(event_id_header(message))
    lost = len(expected - set(ids_of))
    duplicates = len(messages) - len(ids_of)
    print(f"\ncapture kill x2: users={USERS} records={len(messages)} dup={duplicates} lost={lost}")
    assert lost == 0
    assert set(ids_of) == expected
    assert all(len(ids) == 1 for ids in ids_of.values())  # a repeat is the same event
