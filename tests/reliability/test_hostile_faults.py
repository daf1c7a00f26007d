"""Unexpected exceptions at every stage of a job (render, request build, send, retry-tier
produce, dead-letter produce, the registry write of an auto-disable) never leave a record
unfinished: each job still ends (delivered, in a tier, or dead-lettered with the error as its
reason), its slot is given back, and every fetched record is counted as ended. In-process
dispatcher (to inject the faults), real broker, real HTTP receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import dispatcher.webhook
from dispatch_kit import produce_events, register, running_dispatcher, until, webhook_stream
from dispatcher.kafka_io import AsyncProducer
from dispatcher.rendering import RenderCache, Rendered
from dispatcher.service import Dispatcher
from dispatcher.webhook import WebhookClient
from producer.config import Settings
from receiver import Received, Receiver
from reliability.hostile_kit import (
    StreamAccount,
    dead_letters_by_stream,
    stream_group,
    tier_groups,
    wait_committed,
)

EVENTS = 60


class Injected(RuntimeError):
    """The fault the test injects."""


async def test_injected_exceptions_at_every_stage_end_every_job(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six groups of events meet a fault at one stage each (or none); stream C fails every
    attempt and its auto-disable cannot be written. Every event of both streams ends where
    its fault sends it, every worker ended what it fetched, no slot is held, and every group
    committed to the end of its topic."""
    groups: dict[str, set[str]] = {name: set() for name in FAULTS}
    faults = Faults(groups)
    faults.install(monkeypatch)
    seen: set[tuple[str, str]] = set()

    def script(request: Received, _n: int) -> int:
        key = (request.path, request.event_id)
        first = key not in seen
        seen.add(key)
        if request.path == "c":
            return 500
        if request.event_id in groups["tier_produce"] and first:
            return 503
        if request.event_id in groups["dlq_produce"]:
            return 400
        return 200

    receiver.script = script
    # The events exist (and their fault groups are known) before any stream reads them.
    earliest = {"start_position": "earliest"}
    stream_a, stream_c = register(
        settings,
        webhook_stream(receiver.url("a"), name="a", delivery=earliest),
        webhook_stream(receiver.url("c"), name="c", delivery={**earliest, "auto_disable_after": 3}),
    )
    ids = await asyncio.to_thread(produce_events, settings, EVENTS)
    for i, name in enumerate(FAULTS):
        groups[name].update(ids[i::6])
    async with running_dispatcher(settings) as running:
        await _settle(running, receiver, settings, ids, faults, stream_a.id, stream_c.id)
    expected_dead = expected_dead_letters(groups)
    dead = await asyncio.to_thread(dead_letters_by_stream, settings)
    workers, held = faults.workers, faults.held
    behind = {
        name: await asyncio.to_thread(
            wait_committed, settings, stream_group(settings, s.id), settings.lifecycle_topic
        )
        for name, s in (("a", stream_a), ("c", stream_c))
    }
    for topic, group in tier_groups(settings).items():
        behind[topic] = await asyncio.to_thread(wait_committed, settings, group, topic)
    for name, stream in (("a", stream_a), ("c", stream_c)):
        letters = {e: r for e, r in dead.get(stream.id, {}).items() if e in set(ids)}
        delivered = receiver.delivered_ids(name) & set(ids)
        account = StreamAccount(name, EVENTS, len(delivered), 0, len(letters), behind[name])
        print(account.line())
        assert account.lost == 0
        assert account.pinned == 0
    print(f"faults injected: {faults.fired}; workers: {[(w.fetched, w.ended) for w in workers]}")
    wrong = {
        e: r for e, r in dead[stream_a.id].items() if not r.startswith(expected_dead.get(e, "?"))
    }
    assert not wrong, wrong
    assert all(faults.fired.values()), faults.fired
    assert not any(held.values()), held
    assert not any(behind.values()), behind


def expected_dead_letters(groups: dict[str, set[str]]) -> dict[str, str]:
    """Event id → the start of its dead-letter reason, for stream A."""
    return {
        **dict.fromkeys(groups["render"], "render failed: Injected"),
        **dict.fromkeys(groups["tier_produce"], "retry tier"),
        **dict.fromkeys(groups["dlq_produce"], "permanent failure: HTTP 400"),
    }


async def _settle(
    running: Dispatcher,
    receiver: Receiver,
    settings: Settings,
    ids: list[str],
    faults: Faults,
    stream_a: str,
    stream_c: str,
) -> None:
    """Wait until every event of both streams ended and every worker is idle; remember the
    workers and the slots held then (on ``faults``)."""
    expected_dead = expected_dead_letters(faults.groups)
    expected_delivered = set(ids) - set(expected_dead)
    await receiver.wait_until(lambda: expected_delivered <= receiver.delivered_ids("a"), 60)
    workers = _workers(running)
    try:
        await _dead_letters(settings, {stream_a: len(expected_dead), stream_c: EVENTS})
    except AssertionError as exc:
        state = [(w.group_id, w.fetched, dict(w.ended), w.tracker.pending_total()) for w in workers]
        raise AssertionError(f"{exc}; workers {state}; fired {faults.fired}") from None
    await until(lambda: all(w.fetched == sum(w.ended.values()) for w in workers), 30)
    faults.workers = workers
    faults.held = {s: r.slots.in_flight for s, r in running.runtimes.items()}


FAULTS = ("render", "build", "send", "tier_produce", "dlq_produce", "none")


class Faults:
    """Raises :class:`Injected` at one stage for each group of event ids (build and send
    only on the first attempt, so those events are delivered on a retry), and at every
    auto-disable's registry write."""

    def __init__(self, groups: dict[str, set[str]]) -> None:
        self.groups = groups
        self.fired = dict.fromkeys([*FAULTS[:-1], "registry"], 0)
        self._once: set[tuple[str, str]] = set()
        self.workers: list[Any] = []
        self.held: dict[str, int] = {}

    def _first(self, stage: str, event_id: str) -> bool:
        if event_id not in self.groups[stage] or (stage, event_id) in self._once:
            return False
        self._once.add((stage, event_id))
        return True

    def _fire(self, stage: str) -> None:
        self.fired[stage] += 1
        raise Injected(stage)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Patch the stages."""
        render, sign = RenderCache.render, dispatcher.webhook.signature_headers
        deliver, produce = WebhookClient.deliver, AsyncProducer.produce
        faults = self

        def faulty_render(self: RenderCache, value: bytes, purpose: str | None) -> Rendered:
            rendered = render(self, value, purpose)
            if rendered.event_id in faults.groups["render"]:
                faults._fire("render")
            return rendered

        def faulty_sign(secrets: Any, event_id: str, body: bytes) -> dict[str, str]:
            if faults._first("build", event_id):
                faults._fire("build")
            return sign(secrets, event_id, body)

        async def faulty_deliver(self: WebhookClient, batch: Any) -> Any:
            if faults._first("send", batch[0].job.event_id):
                faults._fire("send")
            return await deliver(self, batch)

        async def faulty_produce(self: AsyncProducer, topic: str, *args: Any, **kw: Any) -> None:
            headers = dict(args[2] if len(args) > 2 else kw.get("headers") or [])
            event = (headers.get("tidings-event-id") or b"").decode()
            if ".retry." in topic and event in faults.groups["tier_produce"]:
                faults._fire("tier_produce")
            if topic.endswith("dlq") and faults._first("dlq_produce", event):
                faults._fire("dlq_produce")
            await produce(self, topic, *args, **kw)

        async def faulty_disable(self: Dispatcher, stream_id: str, reason: str) -> None:
            faults._fire("registry")

        monkeypatch.setattr(RenderCache, "render", faulty_render)
        monkeypatch.setattr(dispatcher.webhook, "signature_headers", faulty_sign)
        monkeypatch.setattr(WebhookClient, "deliver", faulty_deliver)
        monkeypatch.setattr(AsyncProducer, "produce", faulty_produce)
        monkeypatch.setattr(Dispatcher, "_disable", faulty_disable)


def _workers(running: Dispatcher) -> list[Any]:
    return [w for w, _t in running._workers.values()] + [w for w, _t in running._tiers]


async def _dead_letters(settings: Settings, wanted: dict[str, int]) -> dict[str, dict[str, str]]:
    """Wait until each stream has at least its wanted number of dead letters."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        dead = await asyncio.to_thread(dead_letters_by_stream, settings)
        if all(len(dead.get(s, {})) >= n for s, n in wanted.items()):
            return dead
        found = {s: len(dead.get(s, {})) for s in wanted}
        assert asyncio.get_running_loop().time() < deadline, f"dead letters {found} of {wanted}"
        await asyncio.sleep(0.5)
