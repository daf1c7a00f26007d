"""Streams managed live through the registry: create, disable, re-enable, delete."""

from __future__ import annotations

import asyncio

import pytest

from dispatch_kit import produce_events, register, running_dispatcher, until, webhook_stream
from dispatcher.registry import RegistryWriter
from dispatcher.service import Dispatcher
from producer.config import Settings
from receiver import Receiver


async def test_stream_lifecycle_without_restart(settings: Settings, receiver: Receiver) -> None:
    """A running dispatcher picks up a new stream, stops it when disabled (events produced
    meanwhile are kept, not dropped), resumes them on re-enable, and stops on delete."""
    writer = RegistryWriter(settings)
    async with running_dispatcher(settings) as dispatcher:
        stream = writer.put(webhook_stream(receiver.url()))
        await until(lambda: stream.id in dispatcher.runtimes)
        first = produce_events(settings, 5)
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(first))

        disabled = writer.put(stream.model_copy(update={"status": "disabled"}))
        await until(lambda: stream.id not in dispatcher.runtimes)
        while_disabled = produce_events(settings, 5)
        await asyncio.sleep(1.0)  # would be ample time to deliver, were it consuming
        assert receiver.delivered_ids() == set(first), "a disabled stream delivers nothing"

        writer.put(disabled.model_copy(update={"status": "enabled"}))
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(first + while_disabled))

        writer.delete(stream.id)
        await until(lambda: stream.id not in dispatcher.runtimes)
        produce_events(settings, 5)
        await asyncio.sleep(1.0)
    assert receiver.delivered_ids() == set(first + while_disabled)
    assert len(receiver.requests) == 10, "nothing delivered twice or after deletion"


async def test_reconfigured_destination_takes_effect_live(
    settings: Settings, receiver: Receiver
) -> None:
    """Changing a stream's endpoint and subscriptions applies without a restart."""
    writer = RegistryWriter(settings)
    (stream,) = register(settings, webhook_stream(receiver.url("old")))
    async with running_dispatcher(settings) as dispatcher:
        produce_events(settings, 2)
        await receiver.wait_until(lambda: len(receiver.delivered("old")) == 2)
        moved = webhook_stream(receiver.url("new"), types=["organization.*"])
        writer.put(
            stream.model_copy(
                update={
                    "destination": moved.destination,
                    "subscriptions": moved.subscriptions,
                }
            )
        )
        await until(lambda: dispatcher.runtimes[stream.id].stream.destination == moved.destination)
        ids = produce_events(settings, 10)
        await receiver.wait_until(lambda: len(receiver.delivered("new")) == 7)
    assert len(receiver.delivered("old")) == 2
    assert {r.json["type"].split(".")[0] for r in receiver.delivered("new")} == {"organization"}
    assert receiver.delivered_ids("new") <= set(ids)


async def test_start_positions(settings: Settings, receiver: Receiver) -> None:
    """A new stream starts at its creation by default; 'earliest' backfills the topic."""
    old = produce_events(settings, 4)
    register(
        settings,
        webhook_stream(receiver.url("now")),
        webhook_stream(receiver.url("earliest"), delivery={"start_position": "earliest"}),
    )
    async with running_dispatcher(settings):
        new = produce_events(settings, 3)
        await receiver.wait_until(
            lambda: (
                receiver.delivered_ids("earliest") == set(old + new)
                and receiver.delivered_ids("now") == set(new)
            )
        )


async def test_two_dispatchers_share_a_streams_partitions(
    settings: Settings, receiver: Receiver
) -> None:
    """Two dispatchers in one consumer group split the partitions; every event arrives."""
    register(settings, webhook_stream(receiver.url()))
    first = Dispatcher(settings)
    second = Dispatcher(settings)
    await first.start()
    await second.start()

    def assigned(dispatcher: Dispatcher) -> int:
        return sum(
            len(worker.consumer.consumer.assignment())
            for worker, _task in dispatcher._workers.values()
            if worker.consumer is not None
        )

    try:
        await until(lambda: assigned(first) > 0 and assigned(second) > 0, timeout=30)
        assert assigned(first) + assigned(second) == settings.lifecycle_partitions
        ids = produce_events(settings, 60)
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids))
    finally:
        await first.stop()
        await second.stop()


async def test_a_dying_consumer_task_fails_the_process(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a stream's consumer task dies of an unexpected error, the dispatcher marks itself
    failed (run_forever then exits 1 so a supervisor restarts it) instead of idling."""
    from dispatcher.stream_worker import StreamWorker

    async def broken_run(self: StreamWorker) -> None:
        raise RuntimeError("simulated consumer crash")

    register(settings, webhook_stream("http://127.0.0.1:9/never"))
    monkeypatch.setattr(StreamWorker, "run", broken_run)
    async with running_dispatcher(settings) as dispatcher:
        await until(dispatcher.failed.is_set)


async def test_events_produced_while_a_new_stream_starts_are_all_delivered(
    settings: Settings, receiver: Receiver
) -> None:
    """A stream created on a running dispatcher gets every event produced from its creation
    on, including those produced while its consumer joins the group and finds its start."""
    import threading

    writer = RegistryWriter(settings)
    async with running_dispatcher(settings):
        writer.put(webhook_stream(receiver.url()))
        ids: list[str] = []

        def trickle() -> None:
            for _ in range(40):
                ids.extend(produce_events(settings, 2))

        thread = threading.Thread(target=trickle)
        thread.start()
        await asyncio.to_thread(thread.join)
        await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids), timeout=30)
