"""``tidings status``: streams, their lag, the retry backlog and the dead letters at a glance.

Read-only and straight from Kafka: the streams from a snapshot of the registry topic; a
stream's *lag* is, summed over the lifecycle topic's partitions, the high watermark minus
its consumer group's committed offset, so it counts every lifecycle record the stream has
not yet passed, subscribed type or not. A partition the group never committed counts from
where the stream would start reading (its ``start_position``), as the dispatcher would. A
retry tier's *backlog* is the same measure for the tier's topic and group (records waiting
for their delay count too). *Dead letters* are the records of the dead-letter topic that no
purge marker removed (see :mod:`admin.dlq`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from admin.dlq import (
    DEFAULT_TIMEOUT,
    read_dead_letters,
    render_table,
    reports_errors,
    topic_partitions,
)
from dispatcher.registry import RegistryView
from dispatcher.streams import Stream
from producer.config import Settings
from producer.durations import format_duration
from schemas import constants

#: ``(low, high)`` watermarks per partition of one topic.
Watermarks = Mapping[int, tuple[int, int]]


def backlog(marks: Watermarks, committed: Mapping[int, int], start: Mapping[int, int]) -> int:
    """Records a consumer group has not yet passed, summed over partitions.

    A partition's position is the group's committed offset, else ``start[partition]`` (where
    a fresh consumer would begin), else the low watermark; a position below the low
    watermark (records removed by retention) counts from the low watermark.
    """
    total = 0
    for partition, (low, high) in marks.items():
        position = committed.get(partition, -1)
        if position < 0:
            position = start.get(partition, low)
        total += max(0, high - max(low, position))
    return total


@dataclass(frozen=True)
class StreamState:
    """One stream as ``status`` shows it."""

    stream: Stream
    lag: int
    dead_letters: int

    @property
    def destination(self) -> str:
        """Where the stream delivers, in one short line."""
        destination = self.stream.destination
        if destination.type == "webhook":
            return destination.configuration.webhook_endpoint
        config = destination.configuration
        return f"{config.event_bus_name} ({config.aws_region})"

    def to_json(self) -> dict[str, object]:
        """The stream's line of ``status --json``."""
        return {
            "id": self.stream.id,
            "name": self.stream.name,
            "status": self.stream.status,
            "status_reason": self.stream.status_reason,
            "destination_type": self.stream.destination.type,
            "destination": self.destination,
            "lag": self.lag,
            "dead_letters": self.dead_letters,
        }


@dataclass(frozen=True)
class TierState:
    """One retry tier's backlog."""

    delay: timedelta
    topic: str
    backlog: int


@dataclass(frozen=True)
class Status:
    """Everything ``status`` shows."""

    streams: list[StreamState]
    tiers: list[TierState]
    dead_letters: int

    def to_json(self) -> dict[str, object]:
        """The document ``status --json`` prints."""
        return {
            "streams": [s.to_json() for s in self.streams],
            "retry_tiers": [
                {"delay": format_duration(t.delay), "topic": t.topic, "backlog": t.backlog}
                for t in self.tiers
            ],
            "dead_letters": self.dead_letters,
        }

    @staticmethod
    def _stream_row(s: StreamState) -> tuple[object, ...]:
        return (s.stream.id, s.stream.name, s.stream.status, s.destination, s.lag, s.dead_letters)

    def render(self) -> str:
        """The human-readable tables."""
        if self.streams:
            streams = render_table(
                ("STREAM", "NAME", "STATUS", "DESTINATION", "LAG", "DEAD LETTERS"),
                [self._stream_row(s) for s in self.streams],
                numeric={4, 5},
            )
        else:
            streams = "No streams."
        tiers = render_table(
            ("RETRY TIER", "TOPIC", "BACKLOG"),
            [(format_duration(t.delay), t.topic, t.backlog) for t in self.tiers],
            numeric={2},
        )
        return f"{streams}\n\n{tiers}\n\nDead letters: {self.dead_letters}"


# Kafka -------------------------------------------------------------------------------------
async def _registry_snapshot(settings: Settings, timeout: float) -> list[Stream]:
    """The registry's streams once a view has read up to the end seen when it started."""
    view = RegistryView(settings)
    running = asyncio.create_task(view.run())
    caught_up = asyncio.create_task(view.caught_up.wait())
    await asyncio.wait({running, caught_up}, timeout=timeout, return_when="FIRST_COMPLETED")
    view.stop()
    caught_up.cancel()
    await running  # re-raises what stopped the view early
    if not view.caught_up.is_set():
        raise TimeoutError(f"reading {settings.streams_topic} took longer than {timeout:g}s")
    return sorted(view.streams.values(), key=lambda s: (s.name, s.id))


def _watermarks(admin: AdminClient, topic: str, timeout: float) -> dict[int, tuple[int, int]]:
    partitions = topic_partitions(admin, topic, timeout)
    found: dict[str, dict[int, int]] = {}
    for name, spec in (("low", OffsetSpec.earliest()), ("high", OffsetSpec.latest())):  # type: ignore[no-untyped-call]
        futures = admin.list_offsets(
            {TopicPartition(topic, p): spec for p in partitions}, request_timeout=timeout
        )
        found[name] = {tp.partition: future.result().offset for tp, future in futures.items()}
    return {p: (found["low"][p], found["high"][p]) for p in partitions}


def _committed(
    admin: AdminClient, group: str, topic: str, partitions: Watermarks, timeout: float
) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    futures = admin.list_consumer_group_offsets([request], request_timeout=timeout)
    result = futures[group].result()
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.error is None}


def _start_offsets(
    admin: AdminClient, topic: str, stream: Stream, marks: Watermarks, timeout: float
) -> dict[int, int]:
    """Where the stream's consumer begins a partition it never committed."""
    position = stream.delivery.start_position
    if position == "earliest":
        return {}
    when = stream.created_at if position == "now" else position
    spec = OffsetSpec.for_timestamp(int(when.timestamp() * 1000))
    futures = admin.list_offsets(
        {TopicPartition(topic, p): spec for p in marks}, request_timeout=timeout
    )
    starts = {tp.partition: future.result().offset for tp, future in futures.items()}
    # No record at or after the time: the consumer starts at the end.
    return {p: offset if offset >= 0 else marks[p][1] for p, offset in starts.items()}


def _group_backlog(
    admin: AdminClient,
    group: str,
    topic: str,
    marks: Watermarks,
    timeout: float,
    stream: Stream | None = None,
) -> int:
    committed = _committed(admin, group, topic, marks, timeout)
    fresh = any(committed.get(p, -1) < 0 for p in marks)
    start = _start_offsets(admin, topic, stream, marks, timeout) if stream and fresh else {}
    return backlog(marks, committed, start)


def collect_status(settings: Settings, timeout: float = DEFAULT_TIMEOUT) -> Status:
    """Read streams, lag, retry backlog and dead letters from Kafka."""
    admin = AdminClient(settings.kafka_config())
    # First, so that an unreachable cluster fails here, before a registry view is started.
    lifecycle = _watermarks(admin, settings.lifecycle_topic, timeout)
    streams = asyncio.run(_registry_snapshot(settings, timeout))
    contents = read_dead_letters(settings, timeout)
    per_stream = Counter(letter.stream_id for letter in contents.letters)
    states = [
        StreamState(
            stream,
            _group_backlog(
                admin,
                settings.topic(constants.STREAM_GROUP_PREFIX + stream.id),
                settings.lifecycle_topic,
                lifecycle,
                timeout,
                stream,
            ),
            per_stream[stream.id],
        )
        for stream in streams
    ]
    tiers = []
    for delay in settings.retry_schedule:
        topic = settings.retry_topic(delay)
        group = settings.topic(constants.RETRY_TOPIC_PREFIX + format_duration(delay))
        marks = _watermarks(admin, topic, timeout)
        tiers.append(TierState(delay, topic, _group_backlog(admin, group, topic, marks, timeout)))
    return Status(states, tiers, len(contents.letters))


@reports_errors
def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print the status tables, or one JSON document with ``--json``."""
    status = collect_status(settings, args.timeout)
    print(json.dumps(status.to_json()) if args.json else status.render())
    return 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status`` to the ``tidings`` command line."""
    status = subparsers.add_parser(
        "status",
        help="streams, lag, retry backlog and dead letters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("--json", action="store_true", help="one JSON document for scripts")
    status.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for Kafka"
    )
    status.set_defaults(handler=cmd_status)
