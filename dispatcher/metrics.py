"""Prometheus metrics of a dispatcher process, in a registry of its own (several
dispatchers can live in one test process), served on ``/metrics``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_E2E_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600, 3600, 21600, 86400)


@dataclass(frozen=True, slots=True)
class StreamMetrics:
    """One stream's children of the per-delivery metrics, looked up once per stream rather
    than by label on every delivery."""

    attempt_seconds: Histogram
    end_to_end_seconds: Histogram
    succeeded: Counter


class DispatcherMetrics:
    """Deliveries by stream and outcome, attempt and end-to-end latency, backlogs, lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "tidings_deliveries",
            "Delivery attempts by stream and outcome (success, retrying, failed).",
            ["stream", "outcome"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "tidings_delivery_attempt_seconds",
            "Duration of one delivery attempt.",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.end_to_end_seconds = Histogram(
            "tidings_end_to_end_seconds",
            "From the event's time to its successful delivery.",
            ["stream"],
            buckets=_E2E_BUCKETS,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "tidings_dead_letters",
            "Records this process put in the dead-letter topic, by stream.",
            ["stream"],
            registry=self.registry,
        )
        self.retry_backlog = Gauge(
            "tidings_retry_backlog",
            "Records waiting in a retry tier (partitions assigned to this process).",
            ["tier"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "tidings_consumer_lag",
            "Lifecycle records not yet consumed by a stream (partitions assigned here).",
            ["stream"],
            registry=self.registry,
        )
        self.in_flight_limit = Gauge(
            "tidings_stream_in_flight_limit",
            "Deliveries the stream may have in flight now: its max_in_flight, or fewer while "
            "its endpoint does not answer.",
            ["stream"],
            registry=self.registry,
        )
        self.parked_subjects = Gauge(
            "tidings_parked_subjects",
            "Subjects of an ordered stream whose event waits for a retry, holding back the "
            "subject's later events (partitions assigned here).",
            ["stream"],
            registry=self.registry,
        )
        self.parked_events = Gauge(
            "tidings_parked_events",
            "Events of an ordered stream parked behind an earlier event of their subject that "
            "waits for a retry (partitions assigned here).",
            ["stream"],
            registry=self.registry,
        )
        self._streams: dict[str, StreamMetrics] = {}

    def for_stream(self, stream_id: str) -> StreamMetrics:
        """The stream's per-delivery metric children (cached)."""
        children = self._streams.get(stream_id)
        if children is None:
            children = self._streams[stream_id] = StreamMetrics(
                attempt_seconds=self.attempt_seconds.labels(stream_id),
                end_to_end_seconds=self.end_to_end_seconds.labels(stream_id),
                succeeded=self.deliveries.labels(stream_id, "success"),
            )
        return children

    def forget_stream(self, stream_id: str) -> None:
        """Drop the gauges of a stream that no longer runs here (its counters stay)."""
        self._streams.pop(stream_id, None)
        for gauge in (
            self.consumer_lag,
            self.in_flight_limit,
            self.parked_subjects,
            self.parked_events,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(stream_id)

    async def handle(self, _request: web.Request) -> web.Response:
        """The ``/metrics`` endpoint."""
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )
