"""Ordered delivery per subject (``delivery.ordering: subject``) against the real broker, a
real dispatcher and a real receiver."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from admin.broker import LocalBroker
from admin.topics import ensure_all
from dispatch_kit import (
    headers_of,
    register,
    running_dispatcher,
    until,
    webhook_stream,
    with_schedule,
)
from dispatcher import subject_order
from dispatcher.delivery_log import AttemptRecord
from dispatcher.engine import ORDER_BROKEN
from dispatcher.rendering import RenderCache, Rendered
from kafka_testkit import fresh_settings
from ordered_kit import Place, lives, out_of_step, overtakings, places_of, produce, subject_name
from producer.config import Settings
from receiver import Received, Receiver
from reliability.accounting import read_to_end
from schemas import constants

SUBJECTS = 2_000
#: Every tenth subject fails (503) until the test opens the gate.
FAILING = {subject_name(n) for n in range(0, SUBJECTS, 10)}
#: This subject's second event is refused for good (400): dead-lettered, and its later
#: events go on.
REFUSED = subject_name(5)


def subject_of(request: Received) -> str:
    """The user id an event is about."""
    return str(request.json["data"]["object"]["user_id"])


async def test_each_subject_arrives_in_order_while_failing_subjects_hold_only_themselves(
    settings: Settings, receiver: Receiver
) -> None:
    """2,000 subjects, 5 events each, a tenth of the subjects failing until every other subject's
    events are delivered: those are delivered while the failing ones wait (held back only by
    their own subject), then the failing ones follow; every subject's requests go in produced
    order (a retry repeats the same event, nothing overtakes), nothing is lost, the parked
    events are marked in the history and the one dead letter says the order broke there."""
    settings = with_schedule(settings, ["1s", "2s", "4s", "8s", "16s"])
    gate_open = False
    answered: set[str] = set()  # events answered 200
    events = lives(settings, SUBJECTS)
    places = places_of(events)

    def answer(request: Received, _seen: int) -> int:
        subject = subject_of(request)
        if subject == REFUSED and places[request.event_id].index == 1:
            return 400
        if subject in FAILING and not gate_open:
            return 503
        answered.add(request.event_id)
        return 200

    receiver.script = answer
    (stream,) = register(
        settings,
        webhook_stream(
            receiver.url(),
            delivery={"ordering": "subject", "max_in_flight": 64, "auto_disable_after": 100_000},
        ),
    )
    healthy_events = (SUBJECTS - len(FAILING)) * 5 - 1  # less REFUSED's dead letter
    async with running_dispatcher(settings) as dispatcher:
        await asyncio.to_thread(produce, settings, events)
        await receiver.wait_until(lambda: len(answered) >= healthy_events, timeout=90)
        sample = dispatcher.metrics.registry.get_sample_value
        parked_subjects = sample("tidings_parked_subjects", {"stream": stream.id})
        parked_events = sample("tidings_parked_events", {"stream": stream.id})
        # While gated, the failing subjects got their first event attempted and no other.
        gated = [r for r in receiver.requests if subject_of(r) in FAILING]
        assert {places[r.event_id].index for r in gated} == {0}
        gate_open = True
        opened = time.monotonic()
        await receiver.wait_until(lambda: len(answered) >= SUBJECTS * 5 - 1, timeout=60)
    print(f"\nfailing subjects delivered {time.monotonic() - opened:.1f}s after the gate opened")
    assert parked_subjects == len(FAILING)
    assert parked_events == len(FAILING) * 4

    dead = read_to_end(settings, settings.dlq_topic)
    assert len(dead) == 1
    dead_headers = headers_of(dead[0])
    assert places[dead_headers[constants.HEADER_EVENT_ID]] == Place(REFUSED, 1)
    assert dead_headers[constants.HEADER_DLQ_REASON].endswith(ORDER_BROKEN)
    dead_ids = {dead_headers[constants.HEADER_EVENT_ID]}

    arrivals = [(r.event_id, 200 <= r.status < 300) for r in receiver.requests]
    assert overtakings(arrivals, places, dead_ids) == []
    assert out_of_step(arrivals, places, dead_ids) == []
    lost = set(places) - receiver.delivered_ids() - dead_ids
    assert lost == set()
    assert len(receiver.delivered()) == SUBJECTS * 5 - 1  # no duplicates without a crash

    records = [
        attempt
        for message in read_to_end(settings, settings.deliveries_topic)
        for attempt in AttemptRecord.all_from_record(message.value())
    ]
    parked = {r.event_id for r in records if r.status == "parked"}
    assert {places[e].subject for e in parked} == FAILING
    assert {places[e].index for e in parked} == {1, 2, 3, 4}


async def test_unordered_stream_beside_keeps_its_concurrency(
    settings: Settings, receiver: Receiver
) -> None:
    """The same events to an unordered stream whose receiver fails the first attempt of
    every event 0: later events of those subjects arrive before their event 0 is delivered
    (the default does not order), which the ordered test above proves never happens there."""
    settings = with_schedule(settings, ["1s"])

    def answer(request: Received, seen: int) -> int:
        return 503 if seen == 0 and request.json["type"] == "user.created" else 200

    receiver.script = answer
    register(settings, webhook_stream(receiver.url(), delivery={"max_in_flight": 64}))
    async with running_dispatcher(settings):
        events = lives(settings, 50)
        await asyncio.to_thread(produce, settings, events)
        places = places_of(events)
        await receiver.wait_until(lambda: len(receiver.delivered_ids()) == 250, timeout=60)
    arrivals = [(r.event_id, 200 <= r.status < 300) for r in receiver.requests]
    assert overtakings(arrivals, places, set())


async def test_an_ordered_stream_skips_unsubscribed_types_without_decoding(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ordered stream subscribed to user.created and user.deleted gets each subject's two
    events in order; the three user.updated between them are skipped from their headers,
    never decoded (one render per delivered event)."""
    renders = Counter[str]()
    real_render = RenderCache.render

    def counting(self: RenderCache, value: bytes, purpose: str | None) -> Rendered:
        rendered = real_render(self, value, purpose)
        renders[rendered.event_type] += 1
        return rendered

    monkeypatch.setattr(RenderCache, "render", counting)
    register(
        settings,
        webhook_stream(
            receiver.url(), types=["user.created", "user.deleted"], delivery={"ordering": "subject"}
        ),
    )
    events = lives(settings, 50)
    places = places_of(events)
    async with running_dispatcher(settings):
        await asyncio.to_thread(produce, settings, events)
        await receiver.wait_until(lambda: len(receiver.delivered_ids()) == 100, timeout=60)
    assert renders == Counter({"user.created": 50, "user.deleted": 50})
    arrivals = [(r.event_id, True) for r in receiver.requests]
    assert {places[e].index for e, _ok in arrivals} == {0, 4}
    skipped = {e for e, p in places.items() if p.index not in (0, 4)}
    assert overtakings(arrivals, places, skipped) == []


async def test_a_long_blocked_subject_stops_the_read_ahead_at_the_span_limit(
    kafka_broker: LocalBroker, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the span limit at 100 records: while subject 0's first event (offset 0) fails,
    the other subjects' events at offsets 1-100 are delivered and reading stops at offset
    101 (fetched 102 records, no further); once subject 0 is delivered, everything follows
    in order."""
    monkeypatch.setattr(subject_order, "MAX_SPAN", 100)
    monkeypatch.setattr(subject_order, "SPAN_CHECK_EVERY", 1)
    settings = fresh_settings(
        monkeypatch,
        kafka_broker.bootstrap_servers,
        lifecycle_partitions=1,
        retry_schedule=["1s", "2s", "4s", "8s", "16s"],
    )
    ensure_all(settings)
    blocked = subject_name(0)
    gate_open = False

    def answer(request: Received, _seen: int) -> int:
        return 503 if subject_of(request) == blocked and not gate_open else 200

    receiver.script = answer
    register(settings, webhook_stream(receiver.url(), delivery={"ordering": "subject"}))
    events = lives(settings, 300, per_subject=2)
    places = places_of(events)
    async with running_dispatcher(settings) as dispatcher:
        await asyncio.to_thread(produce, settings, events)
        await receiver.wait_until(lambda: len(receiver.delivered_ids()) >= 100, timeout=30)
        ((worker, _task),) = dispatcher._workers.values()
        await until(lambda: worker.fetched >= 102)
        assert (worker.fetched, len(receiver.delivered_ids())) == (102, 100)
        gate_open = True
        await receiver.wait_until(lambda: len(receiver.delivered_ids()) == 600, timeout=60)
    arrivals = [(r.event_id, 200 <= r.status < 300) for r in receiver.requests]
    assert overtakings(arrivals, places, set()) == []
