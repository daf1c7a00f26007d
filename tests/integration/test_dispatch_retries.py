"""Retry tiers, dead letters, isolation and auto-disable, against the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from dispatch_kit import (
    headers_of,
    produce_events,
    register,
    running_dispatcher,
    until,
    webhook_stream,
    with_schedule,
)
from dispatcher.delivery_log import AttemptRecord
from dispatcher.service import Dispatcher
from dispatcher.streams import Stream
from kafka_testkit import aread_topic, attempts_in, read_topic
from producer.config import Settings
from receiver import Received, Receiver
from schemas import constants


async def wait_for_status(dispatcher: Dispatcher, stream_id: str, status: str) -> Stream:
    """Wait until the registry view shows the stream with ``status``."""
    await until(
        lambda: getattr(dispatcher.registry.streams.get(stream_id), "status", None) == status
    )
    return dispatcher.registry.streams[stream_id]


async def test_failing_endpoint_climbs_the_tiers_then_succeeds(
    settings: Settings, receiver: Receiver
) -> None:
    """503, 503, then 200: three attempts, spaced by at least the 1 s and 2 s tiers, and the
    delivery log records retrying, retrying, success."""
    receiver.script = lambda _r, seen: 503 if seen < 2 else 200
    (stream,) = register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings):
        ids = produce_events(settings, 3)
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids), timeout=30)
    for event_id in ids:
        attempts = [r for r in receiver.requests if r.event_id == event_id]
        assert [r.status for r in attempts] == [503, 503, 200]
        assert attempts[1].at - attempts[0].at >= 0.95, "never earlier than the 1s tier"
        assert attempts[2].at - attempts[1].at >= 1.95, "never earlier than the 2s tier"
    records = [
        attempt
        for m in read_topic(settings, settings.deliveries_topic, 9, units=attempts_in)
        for attempt in AttemptRecord.all_from_record(m.value())
    ]
    for event_id in ids:
        mine = sorted((r for r in records if r.event_id == event_id), key=lambda r: r.attempt)
        assert [(r.attempt, r.status, r.http_status) for r in mine] == [
            (1, "retrying", 503),
            (2, "retrying", 503),
            (3, "success", 200),
        ]
        assert mine[0].next_attempt_at is not None
        assert mine[0].stream_id == stream.id


async def test_exhausted_retries_end_in_the_dead_letter_topic(
    settings: Settings, receiver: Receiver
) -> None:
    """An endpoint that always answers 503 gets 1 + len(schedule) attempts; the event then
    lies in the DLQ with headers explaining where it came from and why it failed."""
    receiver.script = lambda _r, _n: 503
    (stream,) = register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings):
        (event_id,) = produce_events(settings, 1)
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1, timeout=30)
    assert len(receiver.requests) == 3
    headers = headers_of(dead)
    assert headers[constants.HEADER_STREAM_ID] == stream.id
    assert headers[constants.HEADER_EVENT_ID] == event_id
    assert headers[constants.HEADER_EVENT_TYPE] == "user.created"
    assert headers[constants.HEADER_ATTEMPT] == "3"
    assert headers[constants.HEADER_LAST_HTTP_STATUS] == "503"
    assert headers[constants.HEADER_LAST_ERROR] == "HTTP 503"
    assert headers[constants.HEADER_ORIGINAL_TOPIC] == settings.lifecycle_topic
    assert int(headers[constants.HEADER_ORIGINAL_OFFSET]) >= 0
    assert int(headers[constants.HEADER_ORIGINAL_PARTITION]) >= 0
    assert "retries exhausted" in headers[constants.HEADER_DLQ_REASON]
    first = int(headers[constants.HEADER_FIRST_FAILURE_AT])
    last = int(headers[constants.HEADER_LAST_FAILURE_AT])
    assert last - first >= 2900, "failures spanned both tiers"


async def test_a_400_is_dead_lettered_at_once(settings: Settings, receiver: Receiver) -> None:
    """A 4xx (not 408/410/429) is permanent: one attempt, then the dead-letter topic."""
    receiver.script = lambda _r, _n: 400
    register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings):
        produce_events(settings, 1)
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1, timeout=15)
        await asyncio.sleep(1.5)  # past the first tier's delay: no retry may happen
    assert len(receiver.requests) == 1
    assert headers_of(dead)[constants.HEADER_DLQ_REASON].startswith("permanent failure: HTTP 400")


async def test_retries_never_block_fresh_events(settings: Settings, receiver: Receiver) -> None:
    """Events failing into a 3 s tier do not hold back events produced after them: those are
    all delivered before the first retry is due."""
    settings = with_schedule(settings, ["3s", "6s"])
    failing: set[str] = set()
    receiver.script = lambda r, seen: 503 if r.event_id in failing and seen == 0 else 200
    register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings):
        failing.update(produce_events(settings, 20))
        await receiver.wait_until(lambda: len(receiver.requests) == 20)
        fresh = produce_events(settings, 20)
        await receiver.wait_until(lambda: set(fresh) <= receiver.delivered_ids(), timeout=2.5)
        assert not failing & receiver.delivered_ids(), "the fresh events did not wait"
        await receiver.wait_until(lambda: failing <= receiver.delivered_ids(), timeout=20)


async def test_a_hanging_endpoint_does_not_slow_a_healthy_stream(
    settings: Settings, receiver: Receiver
) -> None:
    """While every request to one stream's endpoint hangs (5 s timeout), another stream on
    the same dispatcher delivers all 300 events."""
    receiver.script = lambda r, _n: "hang" if r.path == "dead" else 200
    register(
        settings,
        webhook_stream(receiver.url("dead"), delivery={"timeout": "5s", "max_in_flight": 8}),
        webhook_stream(receiver.url("healthy")),
    )
    async with running_dispatcher(settings):
        started = time.monotonic()
        ids = produce_events(settings, 300)
        await receiver.wait_until(lambda: receiver.delivered_ids("healthy") == set(ids), timeout=20)
        elapsed = time.monotonic() - started
    assert not [r for r in receiver.requests if r.path == "dead"], "dead requests still hang"
    assert elapsed < 5, f"healthy stream took {elapsed:.1f}s: it waited for the dead one"


async def test_the_in_flight_budget_bounds_hanging_requests_and_spares_healthy_streams(
    settings: Settings, receiver: Receiver
) -> None:
    """With a process budget of 8, two streams whose endpoints hang hold their 4 reserved slots
    each plus the whole budget (16 requests, not their 2 x 64), and a third stream still
    delivers all 300 events meanwhile."""
    settings = settings.model_copy(update={"max_in_flight_total": 8})
    hanging: Counter[str] = Counter()

    def script(request: Received, _seen: int) -> int | str:
        if request.path.startswith("dead"):
            hanging[request.path] += 1
            return "hang"
        return 200

    receiver.script = script
    dead_a, dead_b, _healthy = register(
        settings,
        webhook_stream(receiver.url("dead-a"), delivery={"timeout": "8s"}),
        webhook_stream(receiver.url("dead-b"), delivery={"timeout": "8s"}),
        webhook_stream(receiver.url("healthy")),
    )
    async with running_dispatcher(settings) as dispatcher:
        started = time.monotonic()
        ids = produce_events(settings, 300)
        await receiver.wait_until(lambda: receiver.delivered_ids("healthy") == set(ids), timeout=20)
        await until(lambda: sum(hanging.values()) >= 16, timeout=5)
        elapsed = time.monotonic() - started
        assert sum(hanging.values()) == 16, hanging
        assert hanging["dead-a"] >= 4
        assert hanging["dead-b"] >= 4
        in_flight = [dispatcher.runtimes[s.id].slots.in_flight for s in (dead_a, dead_b)]
        assert sum(in_flight) == 16
    assert elapsed < 8, f"measured after the hanging requests timed out ({elapsed:.1f}s)"


async def test_records_waiting_in_a_tier_survive_a_dispatcher_restart(
    settings: Settings, receiver: Receiver
) -> None:
    """Stop the dispatcher while records wait in the 3 s tier: a new dispatcher resumes them
    and delivers every one (retries cannot get stuck)."""
    settings = with_schedule(settings, ["3s", "6s"])
    receiver.script = lambda _r, seen: 503 if seen == 0 else 200
    register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings):
        ids = produce_events(settings, 30)
        await receiver.wait_until(lambda: len(receiver.requests) == 30)
    assert not receiver.delivered(), "nothing was due before the restart"
    async with running_dispatcher(settings):
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids), timeout=20)


async def test_410_dead_letters_and_disables_the_stream(
    settings: Settings, receiver: Receiver
) -> None:
    """410 Gone: the event is dead-lettered and the stream is disabled with the reason."""
    receiver.script = lambda _r, _n: 410
    (stream,) = register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings) as dispatcher:
        produce_events(settings, 1)
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1, timeout=15)
        disabled = await wait_for_status(dispatcher, stream.id, "disabled")
    assert "410" in (disabled.status_reason or "")
    assert "410" in headers_of(dead)[constants.HEADER_DLQ_REASON]


async def test_consecutive_failures_auto_disable_the_stream(
    settings: Settings, receiver: Receiver
) -> None:
    """After auto_disable_after consecutive failed attempts the stream disables itself."""
    receiver.script = lambda _r, _n: 500
    (stream,) = register(
        settings, webhook_stream(receiver.url(), delivery={"auto_disable_after": 4})
    )
    async with running_dispatcher(settings) as dispatcher:
        produce_events(settings, 4)
        disabled = await wait_for_status(dispatcher, stream.id, "disabled")
    assert disabled.status_reason == "4 consecutive failed deliveries"


async def test_poison_records_are_dead_lettered_while_good_events_flow(
    settings: Settings, receiver: Receiver
) -> None:
    """Garbage bytes, an unknown fingerprint and truncated Avro on the lifecycle topic go to
    the DLQ with the reason; the good events around them are delivered."""
    from confluent_kafka import Producer

    from producer.producer import codec_for
    from schemas.samples import sample_event

    good = codec_for(settings).encode(sample_event("user.created", tenant="t", seed=1))
    poison = {
        "garbage": b"\x00\x01not avro at all",
        "unknown": constants.SINGLE_OBJECT_MAGIC + b"\x11" * 8 + good[10:],
        "truncated": good[: len(good) // 2],
    }
    register(settings, webhook_stream(receiver.url()))
    async with running_dispatcher(settings):
        before = produce_events(settings, 10)
        raw = Producer(settings.kafka_config())
        for name, value in poison.items():
            raw.produce(
                settings.lifecycle_topic,
                value,
                name.encode(),
                headers=[(constants.HEADER_EVENT_ID, name.encode())],
            )
        raw.flush(10)
        after = produce_events(settings, 10)
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(before + after))
        dead = await aread_topic(settings, settings.dlq_topic, 3, timeout=15)
    reasons = {
        headers_of(m)[constants.HEADER_EVENT_ID]: headers_of(m)[constants.HEADER_DLQ_REASON]
        for m in dead
    }
    assert set(reasons) == set(poison)
    assert all(reason.startswith("poison record") for reason in reasons.values())
    assert "unknown" in reasons["unknown"].lower() or "fingerprint" in reasons["unknown"].lower()
    assert {m.value() for m in dead} == set(poison.values()), "original bytes kept"
    assert json.loads(receiver.delivered()[0].body)["type"]


async def test_poison_records_on_a_retry_tier_are_dead_lettered(
    settings: Settings, receiver: Receiver
) -> None:
    """A tier record with garbage bytes, one without headers and one with an unreadable due
    time (read as due now, then found undecodable) each go to the DLQ with the reason; good
    retries in the same tier still deliver."""
    from confluent_kafka import Producer

    receiver.script = lambda _r, seen: 503 if seen == 0 else 200
    (stream,) = register(settings, webhook_stream(receiver.url()))
    tier = settings.retry_topic(settings.retry_schedule[0])
    stream_header = (constants.HEADER_STREAM_ID, stream.id.encode())
    poison = {
        "garbage": (b"\x00garbage", [stream_header]),
        "headerless": (b"whatever", []),
        "bad-due": (b"whatever", [stream_header, (constants.HEADER_DUE_AT, b"soon")]),
    }
    async with running_dispatcher(settings):
        ids = produce_events(settings, 10)
        raw = Producer(settings.kafka_config())
        for name, (value, headers) in poison.items():
            raw.produce(tier, value, name.encode(), headers=headers)
        raw.flush(10)
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids), timeout=30)
        dead = await aread_topic(settings, settings.dlq_topic, 3, timeout=15)
    reasons = {m.key(): headers_of(m)[constants.HEADER_DLQ_REASON] for m in dead}
    assert reasons[b"garbage"].startswith("poison record")
    assert reasons[b"headerless"] == "poison retry record: no valid stream id header"
    assert reasons[b"bad-due"].startswith("poison record")


async def test_an_event_at_the_size_limit_survives_retry_and_dead_letter(
    settings: Settings, receiver: Receiver
) -> None:
    """An event just under the producer's 1 MB limit still fits a retry-tier record and a
    dead-letter record (its headers added): it climbs the tiers and lands in the DLQ."""
    from producer.producer import EventProducer
    from schemas.samples import sample_object

    receiver.script = lambda _r, _n: 503
    register(settings, webhook_stream(receiver.url()))
    user = sample_object("user.created", seed=3)
    user["user_metadata"] = {"blob": "y" * 995_000}
    async with running_dispatcher(settings):
        with EventProducer(settings) as producer:
            event_id = producer.user_created(user)
            assert producer.flush(30) == 0
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1, timeout=30)
    assert headers_of(dead)[constants.HEADER_EVENT_ID] == event_id
    assert len(receiver.requests) == 3
