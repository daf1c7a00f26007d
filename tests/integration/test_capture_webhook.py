"""End to end: a user inserted with plain SQL reaches a webhook as Auth0's user.created."""

from __future__ import annotations

import asyncio
from pathlib import Path

from capture_kit import (
    CAPTURE_MAPPING,
    CAPTURE_USERS_DDL,
    capture_process,
    drop_slot,
    psql,
    wait_for_slot,
)
from dispatch_kit import register, running_dispatcher, webhook_stream
from producer.config import Settings
from receiver import Receiver


async def test_a_user_inserted_with_psql_reaches_the_webhook_as_user_created(
    pg_dsn: str, settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    """psql INSERT → capture → Kafka → dispatcher → receiver: one Auth0-shaped CloudEvent
    with the mapped user, its id as webhook-id."""
    psql(pg_dsn, CAPTURE_USERS_DDL)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(CAPTURE_MAPPING)
    register(settings, webhook_stream(receiver.url(), types=["user.*"]))
    capture = capture_process(pg_dsn, settings, mapping, tmp_path / "capture.log").start()
    try:
        async with running_dispatcher(settings):
            await asyncio.to_thread(wait_for_slot, pg_dsn, "tidings_capture", capture)
            await asyncio.to_thread(
                psql,
                pg_dsn,
                "INSERT INTO users (id, email, email_verified, full_name) "
                "VALUES (77, 'zoe@example.com', true, 'Zoe');",
            )
            await receiver.wait_until(lambda: len(receiver.delivered()) >= 1, 60)
    finally:
        capture.terminate()
        drop_slot(pg_dsn)
    [request] = receiver.delivered()
    body = request.json
    assert body["type"] == "user.created"
    assert body["specversion"] == "1.0"
    assert body["a0tenant"] == settings.tenant
    assert request.headers["webhook-id"] == body["id"]
    assert body["data"]["object"] == {
        "user_id": "db|77",
        "email": "zoe@example.com",
        "email_verified": True,
        "name": "Zoe",
        "logins_count": 0,
        "created_at": "2026-01-02T03:04:05.678Z",
    }
