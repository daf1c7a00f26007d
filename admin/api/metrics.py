"""The admin service's Prometheus ``/metrics``: what its view of Kafka shows, computed at
scrape time (streams by status, deliveries by stream and outcome over the retained history,
dead letters per stream, whether the view has caught up). Like every route but the health
checks, it needs the admin token (Prometheus: ``authorization: {credentials: ...}``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from admin.api.state import STATE, AdminState

PATH = "/metrics"

#: The OpenAPI path item of ``/metrics`` (not JSON, so not in the route table).
OPENAPI_PATH_ITEM: dict[str, Any] = {
    "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "tags": ["meta"],
        "responses": {
            "200": {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": {"description": "no token"},
            "403": {"description": "wrong token"},
        },
    }
}


class _ViewCollector(Collector):
    def __init__(self, state: AdminState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self._state.view
        streams = GaugeMetricFamily("tidings_streams", "Streams by status.", labels=["status"])
        for status, count in Counter(s.status for s in view.table.streams.values()).items():
            streams.add_metric([status], count)
        yield streams
        deliveries = GaugeMetricFamily(
            "tidings_view_deliveries",
            "Delivery attempts in the retained history, by stream and outcome.",
            labels=["stream", "outcome"],
        )
        dead = GaugeMetricFamily(
            "tidings_view_dead_letters", "Events dead-lettered, by stream.", labels=["stream"]
        )
        history = self._state.history
        totals = history.totals() if history is not None else {}
        letters = history.dead_letters() if history is not None else {}
        for stream_id in view.table.streams:
            for outcome, count in totals.get(stream_id, {}).items():
                if count:
                    deliveries.add_metric([stream_id, outcome], count)
            dead.add_metric([stream_id], letters.get(stream_id, 0))
        yield deliveries
        yield dead
        caught_up = GaugeMetricFamily("tidings_view_caught_up", "1 once the view caught up.")
        ingest = self._state.ingest
        ready = view.caught_up.is_set() and ingest is not None and ingest.caught_up.is_set()
        caught_up.add_metric([], 1 if ready else 0)
        yield caught_up


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``."""
    registry = CollectorRegistry()
    registry.register(_ViewCollector(request.app[STATE]))
    # The history's totals are database reads: off the event loop.
    return web.Response(
        body=await asyncio.to_thread(generate_latest, registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
