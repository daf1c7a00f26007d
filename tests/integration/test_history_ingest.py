"""The history store fed from the real broker: restart resumes without replay, kill -9
neither loses nor doubles, retention deletes, a corrupt file is rebuilt, and two admin
replicas on PostgreSQL answer the same history."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from admin.history import HistoryStore, open_store
from admin.history.ingest import HistoryIngest
from admin_kit import Api, start_api
from history_kit import produce_attempts, start_service
from producer.config import Settings
from schemas.ids import new_stream_id


@contextlib.asynccontextmanager
async def ingesting(settings: Settings) -> AsyncIterator[tuple[HistoryStore, HistoryIngest]]:
    """A store and its ingest, caught up with the topics."""
    store = open_store(settings)
    ingest = HistoryIngest(settings, store, shared=settings.history_url is not None)
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.caught_up.wait(), 30)
        yield store, ingest
    finally:
        ingest.stop()
        await asyncio.wait_for(task, 15)
        ingest.close()
        store.close()


async def test_a_restart_resumes_where_the_store_stopped(settings: Settings) -> None:
    """After a restart only the records written since are read; every attempt is there."""
    stream = new_stream_id()
    produce_attempts(settings, stream, 300, per_record=10)
    async with ingesting(settings) as (store, ingest):
        assert ingest.records_read == 30
        assert len(store.events(stream)) == 300
    produce_attempts(settings, stream, 40, first=300, per_record=10)
    async with ingesting(settings) as (store, ingest):
        assert ingest.records_read == 4
        assert len(store.events(stream)) == 340


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 1000)


async def test_a_corrupt_file_is_rebuilt_from_the_topics(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not a database is moved aside, with a log line, and rebuilt."""
    stream = new_stream_id()
    produce_attempts(settings, stream, 120, per_record=20)
    async with ingesting(settings) as (store, _ingest):
        assert len(store.events(stream)) == 120
    _corrupt(Path(settings.history_path))
    async with ingesting(settings) as (store, ingest):
        assert ingest.records_read == 6
        assert len(store.events(stream)) == 120
    assert "history_store_rebuilding" in capsys.readouterr().out
    assert list(Path(settings.history_path).parent.glob("*.bad-*"))


async def test_retention_deletes_events_older_than_the_retention(settings: Settings) -> None:
    """Attempts older than TIDINGS_DELIVERIES_RETENTION leave the store; recent ones stay."""
    stream = new_stream_id()
    old = datetime.now(UTC) - timedelta(hours=3)
    produce_attempts(settings, stream, 50, at=old)
    produce_attempts(settings, stream, 5, first=50)
    short = settings.model_copy(update={"deliveries_retention": timedelta(hours=1)})
    async with ingesting(short) as (store, _ingest):
        for _ in range(100):
            if len(store.events(stream)) == 5:
                break
            await asyncio.sleep(0.1)
        assert {e.event_id for e in store.events(stream)} == {
            f"evt_{i:022d}" for i in range(50, 55)
        }


def _attempt_lines(path: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT attempts FROM events")]
        except sqlite3.OperationalError:
            return []


async def test_kill_9_during_ingest_leaves_exactly_one_row_per_attempt(
    settings: Settings, tmp_path: Path
) -> None:
    """An admin service killed mid-ingest and restarted stores every attempt once."""
    stream = new_stream_id()
    total = 60_000
    log = tmp_path / "admin.log"
    process, _port = start_service(settings, log)
    try:
        produce_attempts(settings, stream, total, per_record=200)
        deadline = time.monotonic() + 60
        while not 0 < len(_attempt_lines(settings.history_path)) < total:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stored_at_kill = len(_attempt_lines(settings.history_path))
        assert stored_at_kill < total
        process, _port = start_service(settings, log)
        deadline = time.monotonic() + 90
        while len(lines := _attempt_lines(settings.history_path)) < total:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        assert len(lines) == total
        assert all(text.count("\n") == 1 for text in lines)
    finally:
        process.terminate()
        process.wait(15)


async def test_two_admin_replicas_on_postgresql_answer_the_same_history(
    settings: Settings, pg_dsn: str
) -> None:
    """Two admin services sharing one PostgreSQL database list the same deliveries."""
    shared = settings.model_copy(update={"history_url": SecretStr(pg_dsn)})
    first, api_a = await start_api(shared)
    second, api_b = await start_api(shared)
    try:
        created = await api_a.create("http://127.0.0.1:9/hook")
        sid = created["id"]
        ids = produce_attempts(settings, sid, 150, per_record=25)

        async def listing(api: Api) -> list[str]:
            seen: list[str] = []
            cursor: str | None = None
            while True:
                params = {"take": "100", **({"from": cursor} if cursor else {})}
                page = await api.ok("GET", f"/v1/event-streams/{sid}/deliveries", params=params)
                seen += [d["event_id"] for d in page["deliveries"]]
                cursor = page["next"]
                if cursor is None:
                    return seen

        deadline = time.monotonic() + 30
        while len(await listing(api_a)) < 150:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        seen_a, seen_b = await listing(api_a), await listing(api_b)
        assert seen_a == seen_b == sorted(ids, reverse=True)
        detail = await api_b.ok("GET", f"/v1/event-streams/{sid}/deliveries/{ids[0]}")
        assert [a["status"] for a in detail["attempts"]] == ["success"]
    finally:
        await first.close()
        await second.close()
