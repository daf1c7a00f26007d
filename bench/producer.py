"""Producer throughput, as a fraction of the encoding ceiling measured in the same run.

Two timings over the same pre-built events (a pool of seeded sample events covering every
event type, reused round-robin so building them is not measured):

* encode only: :meth:`schemas.codec.AvroCodec.encode` of every event, the CPU-bound ceiling;
* produce until acknowledged: :meth:`producer.producer.EventProducer.emit` of every event, then
  ``flush()``, wall clock, against a real broker (``acks=all``, idempotent, as shipped).

The ratio between them is the figure to compare across machines; absolute rates move with the
machine. Without ``--bootstrap`` the embedded broker (:class:`admin.broker.LocalBroker`) runs on
free ports with a temporary data directory, on the same cores as the producer.

    python bench/producer.py [--events 100000] [--bootstrap HOST:PORT] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where this file would shadow the
# `producer` package: drop that entry before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from confluent_kafka.admin import AdminClient  # noqa: E402

from admin.broker import KAFKA_VERSION, LocalBroker, free_port  # noqa: E402
from admin.topics import ensure_topics, required_topics  # noqa: E402
from producer.config import Settings, load_settings  # noqa: E402
from producer.producer import EventProducer, codec_for  # noqa: E402
from schemas.codec import AvroCodec  # noqa: E402
from schemas.constants import EVENT_TYPES  # noqa: E402
from schemas.models import LifecycleEvent  # noqa: E402
from schemas.samples import sample_event  # noqa: E402

#: Distinct sample events built up front; the benchmark cycles through them.
POOL_SIZE = 1000


@dataclass(frozen=True)
class Result:
    """One benchmark run: what was measured, and where."""

    events: int
    mean_event_bytes: int
    encode_seconds: float
    encode_events_per_s: float
    produce_seconds: float
    produce_events_per_s: float
    produce_to_encode_ratio: float
    bootstrap: str
    embedded_broker: bool
    kafka_version: str | None
    cores: int | None
    python: str


def build_events(count: int) -> list[LifecycleEvent]:
    """``count`` events drawn round-robin from a pool of seeded samples of every type."""
    pool = [
        sample_event(EVENT_TYPES[i % len(EVENT_TYPES)], seed=i)
        for i in range(min(count, POOL_SIZE))
    ]
    return [pool[i % len(pool)] for i in range(count)]


def time_encode(codec: AvroCodec, events: Sequence[LifecycleEvent]) -> tuple[float, int]:
    """Seconds to encode every event, and the total encoded size in bytes."""
    for event in events[: len(EVENT_TYPES)]:  # parse and cache each writer schema first
        codec.encode(event)
    total = 0
    start = time.perf_counter()
    for event in events:
        total += len(codec.encode(event))
    return time.perf_counter() - start, total


def time_produce(settings: Settings, events: Sequence[LifecycleEvent]) -> float:
    """Seconds from the first emit to the acknowledgement of the last event."""
    with EventProducer(settings) as producer:
        # Connect and fetch metadata before the clock starts: one acknowledged warm-up event.
        producer.emit(events[0], wait=True)
        start = time.perf_counter()
        for event in events:
            producer.emit(event)
        remaining = producer.flush(300)
        elapsed = time.perf_counter() - start
        if remaining or producer.failures:
            raise RuntimeError(
                f"{remaining} events unacknowledged, {len(producer.failures)} failed: "
                f"{producer.failures[:3]}"
            )
    return elapsed


@contextlib.contextmanager
def embedded_broker(given: str | None) -> Iterator[tuple[str, int | None]]:
    """The given cluster (no process id), or an embedded broker on free ports and its JVM's
    process id; the broker and its data are removed afterwards."""
    if given:
        yield given, None
        return
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as data_dir:
        broker = LocalBroker(port=free_port(), data_dir=Path(data_dir))
        try:
            broker.start()
            yield broker.bootstrap_servers, broker.pid()
        finally:
            broker.stop()


@contextlib.contextmanager
def bootstrap_servers(given: str | None) -> Iterator[str]:
    """The given cluster, or an embedded broker on free ports that is removed afterwards."""
    with embedded_broker(given) as (servers, _pid):
        yield servers


def run(events: int, bootstrap: str | None) -> Result:
    """Build the events, measure both stages and return the figures."""
    batch = build_events(events)
    with bootstrap_servers(bootstrap) as servers:
        settings = load_settings(
            bootstrap_servers=servers, topic_prefix=f"bench{uuid.uuid4().hex[:8]}."
        )
        # Only the lifecycle topic is written to; the others would be dead weight here.
        lifecycle = [s for s in required_topics(settings) if s.name == settings.lifecycle_topic]
        ensure_topics(AdminClient(settings.kafka_config()), lifecycle)
        encode_seconds, total_bytes = time_encode(codec_for(settings), batch)
        produce_seconds = time_produce(settings, batch)
    encode_rate = events / encode_seconds
    produce_rate = events / produce_seconds
    return Result(
        events=events,
        mean_event_bytes=round(total_bytes / events),
        encode_seconds=round(encode_seconds, 3),
        encode_events_per_s=round(encode_rate),
        produce_seconds=round(produce_seconds, 3),
        produce_events_per_s=round(produce_rate),
        produce_to_encode_ratio=round(produce_rate / encode_rate, 3),
        bootstrap=settings.bootstrap_servers,
        embedded_broker=bootstrap is None,
        kafka_version=KAFKA_VERSION if bootstrap is None else None,
        cores=os.cpu_count(),
        python=sys.version.split()[0],
    )


def render(result: Result) -> str:
    """The human-readable table."""
    broker = f"embedded Kafka {result.kafka_version}" if result.embedded_broker else "external"
    lines = [
        f"{result.events:,} events, mean {result.mean_event_bytes:,} bytes encoded; "
        f"{result.cores} cores; Python {result.python}; broker {result.bootstrap} ({broker})",
        "",
        f"{'stage':<30}{'seconds':>10}{'events/s':>12}{'ratio':>8}",
        f"{'encode only (ceiling)':<30}{result.encode_seconds:>10.2f}"
        f"{result.encode_events_per_s:>12,}{1:>8.2f}",
        f"{'produce until acknowledged':<30}{result.produce_seconds:>10.2f}"
        f"{result.produce_events_per_s:>12,}{result.produce_to_encode_ratio:>8.2f}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments, run, print the table or one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per stage")
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be positive")
    result = run(args.events, args.bootstrap)
    print(json.dumps(asdict(result)) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
