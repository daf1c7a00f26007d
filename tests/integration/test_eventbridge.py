"""The EventBridge destination end to end: the real dispatcher and Kafka broker delivering to
moto's EventBridge server, read back from SQS queues that rules on the bus feed.

Failure modes moto cannot produce (a partial failure, a throttled call) are injected at the
client's one AWS call, ``EventBridgeClient._put_events``, around the real call to moto; a
missing bus, an unreachable endpoint and an oversized event are real.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from admin.broker import free_port
from auth0_catalog import problems
from dispatch_kit import headers_of, register, running_dispatcher
from dispatcher.delivery_log import AttemptRecord
from dispatcher.eventbridge import MAX_ENTRIES, EventBridgeClient
from kafka_testkit import aread_topic, attempts_in
from moto_server import AWS_ENV, SECRET_ACCESS_KEY, Aws, MotoServer, eventbridge_stream
from producer.config import Settings
from producer.producer import EventProducer
from schemas import constants
from schemas.cloudevents import render_cloudevent_json
from schemas.models import LifecycleEvent, make_event
from schemas.samples import sample_context, sample_event, sample_object

Entries = list[dict[str, Any]]
Send = Callable[[Entries], Awaitable[Mapping[str, Any]]]
Inject = Callable[[Send, Entries], Awaitable[Mapping[str, Any]]]


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session, and the AWS credentials chain pointed at test values
    for this process (the dispatcher reads them from the environment)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
        with MotoServer.running(log) as server:
            yield server


@pytest.fixture
async def aws(moto: MotoServer) -> AsyncIterator[Aws]:
    """EventBridge and SQS clients of the moto server."""
    async with Aws.connect(moto.endpoint) as aws:
        yield aws


class PutEventsTap:
    """Wraps every EventBridgeClient's AWS call: records each call (when, which event ids)
    and lets ``inject`` answer instead of, or around, the real call to moto."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, inject: Inject | None = None) -> None:
        self.calls: list[tuple[float, list[str]]] = []
        original = EventBridgeClient._put_events

        async def put_events(client: EventBridgeClient, entries: Entries) -> Mapping[str, Any]:
            self.calls.append((time.monotonic(), event_ids(entries)))

            async def send(chosen: Entries) -> Mapping[str, Any]:
                return await original(client, chosen)

            return await (inject(send, entries) if inject else send(entries))

        monkeypatch.setattr(EventBridgeClient, "_put_events", put_events)

    def sent(self) -> list[str]:
        """Every event id passed to a call, in order."""
        return [event_id for _at, ids in self.calls for event_id in ids]


def event_ids(entries: Entries) -> list[str]:
    return [json.loads(entry["Detail"])["id"] for entry in entries]


def _emit(settings: Settings, events: list[LifecycleEvent]) -> None:
    with EventProducer(settings) as producer:
        for event in events:
            producer.emit(event)
        assert producer.flush(30) == 0


async def emit(settings: Settings, events: list[LifecycleEvent]) -> None:
    """Produce ``events`` on a thread, so the in-process dispatcher keeps running."""
    await asyncio.to_thread(_emit, settings, events)


def one_of_each(settings: Settings, rounds: int = 1) -> list[LifecycleEvent]:
    """Sample events of every type, ``rounds`` times over."""
    types = constants.EVENT_TYPES * rounds
    return [sample_event(t, tenant=settings.tenant, seed=i) for i, t in enumerate(types)]


async def attempts(settings: Settings, count: int) -> dict[str, list[tuple[int, str, str | None]]]:
    """The first ``count`` delivery-log records: per event id, (attempt, status, error)."""
    records = [
        attempt
        for m in await aread_topic(
            settings, settings.deliveries_topic, count, timeout=60, units=attempts_in
        )
        for attempt in AttemptRecord.all_from_record(m.value())
    ]
    by_event: dict[str, list[tuple[int, str, str | None]]] = {}
    for record in sorted(records, key=lambda r: r.attempt):
        by_event.setdefault(record.event_id, []).append(
            (record.attempt, record.status, record.error)
        )
    return by_event


async def test_every_event_type_reaches_the_matching_rule_as_produced(
    settings: Settings,
    moto: MotoServer,
    aws: Aws,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Two events of every type arrive once each through a rule matching source
    tidings.<tenant>: detail-type is the type, detail the CloudEvent JSON a webhook would get,
    time the event time. A rule for another source gets nothing; concurrent deliveries share
    PutEvents calls of at most ten; the AWS secret shows up in no output."""
    bus = await aws.create_bus()
    matching = await aws.queue_for_rule(bus, {"source": [f"tidings.{settings.tenant}"]})
    other = await aws.queue_for_rule(bus, {"source": ["tidings.someone-else"]})
    tap = PutEventsTap(monkeypatch)
    (stream,) = register(settings, eventbridge_stream(bus, endpoint_url=moto.endpoint))
    events = one_of_each(settings, rounds=2)
    async with running_dispatcher(settings):
        await emit(settings, events)
        received = await aws.receive(matching, len(events))
        assert await aws.receive(other, 1, timeout=1.5) == []
    assert sorted(r["detail"]["id"] for r in received) == sorted(e.id for e in events)
    by_id = {r["detail"]["id"]: r for r in received}
    for event in events:
        delivered = by_id[event.id]
        assert delivered["detail-type"] == event.type
        assert delivered["source"] == f"tidings.{settings.tenant}"
        assert delivered["detail"] == json.loads(render_cloudevent_json(event, stream_id=stream.id))
        assert problems(delivered["detail"]) == [], event.type
        assert delivered["time"] == event.time.strftime("%Y-%m-%dT%H:%M:%SZ")
    sizes = [len(ids) for _at, ids in tap.calls]
    assert sum(sizes) == len(events), "each event was sent once"
    assert max(sizes) > 1, f"concurrent deliveries were not batched: {sizes}"
    assert max(sizes) <= MAX_ENTRIES
    output = capfd.readouterr()
    assert SECRET_ACCESS_KEY not in output.out + output.err


async def test_a_partial_failure_retries_or_dead_letters_only_the_failed_entries(
    settings: Settings, moto: MotoServer, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[injected] In one call, one entry is throttled and one invalid while the rest are
    accepted: the throttled one comes back through the 1 s tier and arrives, the invalid one
    is dead-lettered with its code, and nothing else is sent twice."""
    failed: dict[str, str] = {}

    async def fail_two(send: Send, entries: Entries) -> Mapping[str, Any]:
        if failed or len(entries) < 3:
            return await send(entries)
        throttled, invalid = event_ids(entries)[:2]
        failed.update({throttled: "ThrottlingException", invalid: "InvalidArgument"})
        answer = dict(await send(entries[2:]))  # failed entries are not delivered: as AWS does
        answer["Entries"] = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"},
            {"ErrorCode": "InvalidArgument", "ErrorMessage": "Parameter Detail is not valid."},
            *answer["Entries"],
        ]
        answer["FailedEntryCount"] = answer.get("FailedEntryCount", 0) + 2
        return answer

    tap = PutEventsTap(monkeypatch, fail_two)
    bus = await aws.create_bus()
    queue = await aws.queue_for_rule(bus, {"source": [f"tidings.{settings.tenant}"]})
    (stream,) = register(settings, eventbridge_stream(bus, endpoint_url=moto.endpoint))
    events = one_of_each(settings)
    async with running_dispatcher(settings):
        await emit(settings, events)
        received = await aws.receive(queue, len(events) - 1)
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1)
        assert await aws.receive(queue, 1, timeout=1.5) == [], "no entry was sent twice"
        log = await attempts(settings, len(events) + 1)
    throttled, invalid = failed
    assert sorted(r["detail"]["id"] for r in received) == sorted(
        e.id for e in events if e.id != invalid
    )
    assert sorted(tap.sent()) == sorted([*(e.id for e in events), throttled])
    headers = headers_of(dead)
    assert headers[constants.HEADER_EVENT_ID] == invalid
    assert headers[constants.HEADER_STREAM_ID] == stream.id
    assert headers[constants.HEADER_DLQ_REASON] == (
        "permanent failure: InvalidArgument: Parameter Detail is not valid."
    )
    assert log[throttled] == [
        (1, "retrying", "ThrottlingException: Rate exceeded"),
        (2, "success", None),
    ]
    assert log[invalid] == [(1, "failed", "InvalidArgument: Parameter Detail is not valid.")]
    assert all(log[e.id] == [(1, "success", None)] for e in events if e.id not in failed)


async def test_a_throttled_call_climbs_the_retry_tier_then_arrives(
    settings: Settings, moto: MotoServer, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[injected] The first PutEvents call fails whole with ThrottlingException: its events
    are retried through the 1 s tier, no earlier, and then arrive; the log shows both tries."""
    throttled: list[str] = []

    async def throttle_once(send: Send, entries: Entries) -> Mapping[str, Any]:
        if throttled:
            return await send(entries)
        throttled.extend(event_ids(entries))
        error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
        raise ClientError(
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutEvents"
        )

    tap = PutEventsTap(monkeypatch, throttle_once)
    bus = await aws.create_bus()
    queue = await aws.queue_for_rule(bus, {"source": [f"tidings.{settings.tenant}"]})
    register(settings, eventbridge_stream(bus, endpoint_url=moto.endpoint))
    events = one_of_each(settings)[:3]
    async with running_dispatcher(settings):
        await emit(settings, events)
        received = await aws.receive(queue, len(events))
        log = await attempts(settings, len(events) + len(throttled))
    assert sorted(r["detail"]["id"] for r in received) == sorted(e.id for e in events)
    first_at = tap.calls[0][0]
    retried_at = min(at for at, ids in tap.calls[1:] if set(ids) & set(throttled))
    assert retried_at - first_at >= 0.95, "never earlier than the 1s tier"
    for event_id in throttled:
        assert log[event_id] == [
            (1, "retrying", "ThrottlingException: Rate exceeded"),
            (2, "success", None),
        ]


async def test_an_event_over_256_kib_is_dead_lettered_unsent(
    settings: Settings, moto: MotoServer, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event whose entry would exceed EventBridge's 256 KiB (but not the producer's 1 MB)
    is never sent: it is dead-lettered saying why, and the event beside it arrives."""
    tap = PutEventsTap(monkeypatch)
    bus = await aws.create_bus()
    queue = await aws.queue_for_rule(bus, {"source": [f"tidings.{settings.tenant}"]})
    register(settings, eventbridge_stream(bus, endpoint_url=moto.endpoint))
    user = sample_object("user.created", seed=1)
    user["user_metadata"] = {"blob": "x" * 300_000}
    big = make_event("user.created", user, None, sample_context(seed=1), tenant=settings.tenant)
    small = sample_event("user.created", tenant=settings.tenant, seed=2)
    async with running_dispatcher(settings):
        await emit(settings, [big, small])
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1)
        received = await aws.receive(queue, 1)
        assert await aws.receive(queue, 1, timeout=1.5) == []
    headers = headers_of(dead)
    assert headers[constants.HEADER_EVENT_ID] == big.id
    reason = headers[constants.HEADER_DLQ_REASON]
    assert reason.startswith("permanent failure: event too large for EventBridge")
    assert "the limit is 262144 bytes (256 KiB)" in reason
    assert [r["detail"]["id"] for r in received] == [small.id]
    assert big.id not in tap.sent()


async def test_a_missing_bus_dead_letters_at_once(
    settings: Settings, moto: MotoServer, aws: Aws
) -> None:
    """moto answers ResourceNotFoundException for a bus that does not exist: permanent, so
    the event is dead-lettered after one attempt with AWS's reason."""
    (stream,) = register(settings, eventbridge_stream("no-such-bus", endpoint_url=moto.endpoint))
    async with running_dispatcher(settings):
        await emit(settings, one_of_each(settings)[:1])
        (dead,) = await aread_topic(settings, settings.dlq_topic, 1)
    headers = headers_of(dead)
    assert headers[constants.HEADER_STREAM_ID] == stream.id
    assert headers[constants.HEADER_ATTEMPT] == "1"
    assert headers[constants.HEADER_LAST_HTTP_STATUS] == "400"
    assert headers[constants.HEADER_DLQ_REASON].startswith(
        "permanent failure: ResourceNotFoundException: "
    )


async def test_an_unreachable_endpoint_is_retried_then_dead_lettered(settings: Settings) -> None:
    """Nothing listens at the endpoint: each attempt is a retryable connection error, so the
    event climbs both tiers and is dead-lettered after three attempts; the AWS secret is in
    none of the record's headers."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    register(settings, eventbridge_stream("tidings", endpoint_url=endpoint))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        async with running_dispatcher(settings):
            await emit(settings, one_of_each(settings)[:1])
            (dead,) = await aread_topic(settings, settings.dlq_topic, 1, timeout=30)
    headers = headers_of(dead)
    assert headers[constants.HEADER_ATTEMPT] == "3"
    assert headers[constants.HEADER_DLQ_REASON].startswith(
        "retries exhausted: EndpointConnectionError: Could not connect to the endpoint URL"
    )
    assert endpoint in headers[constants.HEADER_LAST_ERROR]
    assert not any(SECRET_ACCESS_KEY in value for value in headers.values())
