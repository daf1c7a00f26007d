"""The dispatcher's Prometheus endpoint reflects what it delivered."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from admin.broker import free_port
from dispatch_kit import produce_events, register, running_dispatcher, webhook_stream
from producer.config import Settings
from receiver import Receiver


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


async def test_metrics_count_deliveries_dead_letters_and_latency(settings: Settings) -> None:
    """/metrics shows deliveries by stream and outcome, dead letters, both latency histograms
    and the lag gauge."""
    receiver = await Receiver().start()
    receiver.script = lambda r, _n: 400 if r.path == "bad" else 200
    port = free_port()
    settings = settings.model_copy(update={"metrics_port": port})
    good, bad = register(
        settings, webhook_stream(receiver.url("good")), webhook_stream(receiver.url("bad"))
    )
    try:
        async with running_dispatcher(settings), aiohttp.ClientSession() as http:
            produce_events(settings, 5)
            await receiver.wait_until(lambda: len(receiver.requests) == 10)

            async def scrape() -> str:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
                    return await response.text()

            # The DLQ produce is acknowledged just after the receiver answered, and the lag
            # gauge is read from each consumer between its fetches: poll for both.
            lag = f'tidings_consumer_lag{{stream="{good.id}"}}'
            async with asyncio.timeout(10):
                while (  # noqa: ASYNC110 - polling a remote endpoint
                    sample(text := await scrape(), "tidings_dead_letters_total", stream=bad.id) < 5
                    or lag not in text
                ):
                    await asyncio.sleep(0.05)
    finally:
        await receiver.stop()
    assert sample(text, "tidings_deliveries_total", stream=good.id, outcome="success") == 5
    assert sample(text, "tidings_deliveries_total", stream=bad.id, outcome="failed") == 5
    assert sample(text, "tidings_dead_letters_total", stream=bad.id) == 5
    assert sample(text, "tidings_delivery_attempt_seconds_count", stream=good.id) == 5
    assert sample(text, "tidings_end_to_end_seconds_count", stream=good.id) == 5
    assert lag in text
