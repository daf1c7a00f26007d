"""Records written to Tidings' topics by someone else (a script, a broken client, an older
or newer version): a non-UTF-8 registry key, garbage registry values, retry and dead-letter
records with out-of-range or non-numeric time headers and cut UTF-8, delivery-log garbage,
lifecycle records without type or id headers or whose header contradicts the body. The
dispatcher and the admin service log and skip or dead-letter each and keep running; a record
without a type header is filtered by its decoded type; ``webhook-id`` is never empty. Real
broker, real dispatcher and admin processes, real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from confluent_kafka import Producer

from admin_kit import TOKEN, AdminProcess
from dispatch_kit import DispatcherProcess, produce_events, register, webhook_stream
from producer.config import Settings
from producer.producer import codec_for, subject_key
from reliability.hostile_kit import dead_letters_by_stream
from reliability.restartable_receiver import RestartableReceiver
from schemas import constants
from schemas.ids import new_stream_id
from schemas.samples import sample_event

CUT = "é".encode()[:1]


async def test_records_written_by_someone_else_are_skipped_or_dead_lettered(
    settings: Settings, receiver: RestartableReceiver, tmp_path: Path
) -> None:
    """Garbage on every topic the services read; both keep running and serve, and the
    lifecycle records without headers are delivered by their decoded type."""
    only_created, everything = register(
        settings,
        webhook_stream(receiver.url("created"), name="created", types=["user.created"]),
        webhook_stream(receiver.url("all"), name="all"),
    )
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    admin = AdminProcess(settings, tmp_path / "admin.log")
    dispatcher.start()
    admin.start()
    codec = codec_for(settings)
    created = sample_event("user.created", tenant=settings.tenant, seed=11)
    deleted = sample_event("user.deleted", tenant=settings.tenant, seed=12)
    liar = sample_event("user.deleted", tenant=settings.tenant, seed=13)
    retried = sample_event("user.created", tenant=settings.tenant, seed=14)
    try:
        await _until_ready(admin)
        raw = Producer(settings.kafka_config())
        tier = settings.retry_topic(settings.retry_schedule[0])
        garbage: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
            (settings.streams_topic, b"\xff\xfe", b"garbage", []),
            (settings.streams_topic, new_stream_id().encode(), b"{not json", []),
            (settings.streams_topic, new_stream_id().encode(), b"\x80\x81 not utf-8", []),
            (
                tier,
                subject_key(retried).encode(),
                codec.encode(retried),
                [
                    (constants.HEADER_STREAM_ID, everything.id.encode()),
                    (constants.HEADER_EVENT_ID, retried.id.encode()),
                    (constants.HEADER_DUE_AT, b"99999999999999999999"),
                    (constants.HEADER_ATTEMPT, b"many"),
                    (constants.HEADER_LAST_ERROR, b"boom " + CUT),
                    (constants.HEADER_FIRST_FAILURE_AT, b"-1"),
                ],
            ),
            (settings.dlq_topic, b"k", b"v", []),
            (
                settings.dlq_topic,
                b"k",
                b"v",
                [
                    (constants.HEADER_STREAM_ID, everything.id.encode()),
                    (constants.HEADER_EVENT_ID, b"evt_dlq_garbage"),
                    (constants.HEADER_LAST_FAILURE_AT, b"1" * 30),
                    (constants.HEADER_DLQ_REASON, b"cut " + CUT),
                    (constants.HEADER_LAST_HTTP_STATUS, b"NaN"),
                ],
            ),
            (settings.deliveries_topic, everything.id.encode(), b"garbage\n\xff{\n{}", []),
            # Lifecycle records as a broken producer writes them: no headers at all, and a
            # type header that contradicts the body.
            (settings.lifecycle_topic, b"u1", codec.encode(created), []),
            (settings.lifecycle_topic, b"u2", codec.encode(deleted), []),
            (
                settings.lifecycle_topic,
                b"u3",
                codec.encode(liar),
                [(constants.HEADER_EVENT_TYPE, b"user.created")],
            ),
        ]
        for topic, key, value, headers in garbage:
            raw.produce(topic, value, key, headers=headers)
        assert raw.flush(30) == 0
        (after,) = await asyncio.to_thread(produce_events, settings, 1, ("user.created",))
        await receiver.wait_until(
            lambda: (
                {created.id, after}.issubset(receiver.delivered_ids("created"))
                and {created.id, deleted.id, retried.id, after}.issubset(
                    receiver.delivered_ids("all")
                )
            ),
            timeout=60,
        )
        dead = await _until_dead(settings, liar.id, [only_created.id, everything.id])
        listing = await _admin_get(admin, "/v1/event-streams")
        assert dispatcher.alive(), "the dispatcher exited"
        assert admin.alive(), "the admin service exited"
    finally:
        dispatcher.terminate()
        admin.terminate()
    assert deleted.id not in receiver.delivered_ids("created"), "filtered by its decoded type"
    for stream in (only_created, everything):
        assert dead[stream.id][liar.id].startswith("poison record: type header"), dead[stream.id]
    ids = {r.headers.get("webhook-id") for r in receiver.requests}
    assert "" not in ids
    assert None not in ids
    assert all(r.headers["webhook-id"] == r.event_id for r in receiver.requests)
    assert {s["id"] for s in listing} >= {only_created.id, everything.id}


async def _until_ready(admin: AdminProcess) -> None:
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{admin.url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def _admin_get(admin: AdminProcess, path: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{admin.url}{path}", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        body = await response.json()
    return list(body if isinstance(body, list) else body.get("event_streams", body))


async def _until_dead(
    settings: Settings, event_id: str, streams: list[str]
) -> dict[str, dict[str, str]]:
    async with asyncio.timeout(30):
        while True:
            dead = await asyncio.to_thread(dead_letters_by_stream, settings)
            if all(event_id in dead.get(s, {}) for s in streams):
                return dead
            await asyncio.sleep(0.3)
