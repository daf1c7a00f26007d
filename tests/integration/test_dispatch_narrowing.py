"""A stream whose endpoint stops answering narrows to one request in flight (its neighbours
then pay for one timed-out request at a time, not 16 or 64), and widens back once it
answers, delivering everything; against the real broker and real HTTP."""

from __future__ import annotations

import asyncio
import time

from dispatch_kit import (
    produce_events,
    register,
    running_dispatcher,
    until,
    webhook_stream,
    with_schedule,
)
from producer.config import Settings
from receiver import Received, Receiver

EVENTS = 200
IN_FLIGHT = 16
TIMEOUT_S = 0.5
WINDOW_S = 3.0


async def test_an_endpoint_that_stops_answering_gets_one_request_at_a_time_until_it_answers(
    settings: Settings, receiver: Receiver
) -> None:
    """Every request hangs past the 0.5 s timeout: the stream narrows from 16 in flight to 1,
    so over 3 s its endpoint sees about 2 requests a second (16 in flight would be 32). Once
    the endpoint answers, the stream widens back to 16 and every event is delivered."""
    settings = with_schedule(settings, ["1s", "2s", "4s", "8s"])
    answering = False
    started: list[float] = []

    def script(_request: Received, _seen: int) -> int | str:
        started.append(time.monotonic())
        return 200 if answering else "hang"

    receiver.script = script
    (stream,) = register(
        settings,
        webhook_stream(receiver.url(), delivery={"timeout": "500ms", "max_in_flight": IN_FLIGHT}),
    )
    async with running_dispatcher(settings) as dispatcher:
        ids = produce_events(settings, EVENTS)
        await until(lambda: stream.id in dispatcher.runtimes, timeout=15)
        slots = dispatcher.runtimes[stream.id].slots
        await until(lambda: slots.width == 1, timeout=15)
        limit = {"stream": stream.id}
        gauge = dispatcher.metrics.registry.get_sample_value
        assert gauge("tidings_stream_in_flight_limit", limit) == 1
        window_start, before = time.monotonic(), len(started)
        await asyncio.sleep(WINDOW_S)  # a measuring window, not a wait for a condition
        rate = (len(started) - before) / (time.monotonic() - window_start)
        assert rate <= 2 / TIMEOUT_S, f"{rate:.1f} requests/s: not narrowed to one at a time"
        assert slots.in_flight <= 1

        answering = True
        await receiver.wait_until(lambda: set(ids) <= receiver.delivered_ids(), timeout=60)
        await until(lambda: slots.width == IN_FLIGHT, timeout=10)
        assert gauge("tidings_stream_in_flight_limit", limit) == IN_FLIGHT
    print(f"\nnarrowed: {rate:.1f} requests/s over {WINDOW_S:g}s; {len(started)} requests in all")
