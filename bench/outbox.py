"""The transactional outbox's figures: relay throughput, commit-to-Kafka latency, and the
issue's full-size fault run.

A private PostgreSQL server (Debian's binaries, ``make postgres``; tests/postgres_kit.py) and
the embedded Kafka broker (unless ``--bootstrap``) start on free ports; a short untimed run
warms the broker's JIT first. Scenarios:

* ``throughput``: ``--events`` committed outbox rows wait (the relay stopped); a real
  ``tidings outbox relay`` process starts, and the clock runs from the moment it holds the
  leadership lock until the last row is deleted (every record acknowledged). The ceiling is
  the same records produced straight from memory by the same idempotent producer settings.
* ``latency``: 8 writer threads commit ``--rate`` events/s in all for ``--seconds``. Latency
  is the writer's clock when its COMMIT returned → the broker's append time of the record
  (``LogAppendTime``; with ``acks=all`` on one broker the acknowledgement follows at once).
  Its ceiling, in the same run: the producer library's own emit → append at the same rate.
* ``kills``: the issue's proof at full size: ``--mutations`` transactions from 8 writers,
  10% rolled back after writing their event, the relay killed with SIGKILL at 25, 50 and 75%
  of the run; the account (lost, phantom, duplicates, order per subject).

    python bench/outbox.py [--scenario all|throughput|latency|kills] [--events 50000]
        [--rate 1000] [--seconds 10] [--mutations 20000] [--bootstrap HOST:PORT] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on sys.path, where bench/producer.py would shadow
# the `producer` package; the PostgreSQL and outbox kits live with the tests.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent / "tests"))

import psycopg  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from admin.broker import LocalBroker, free_port  # noqa: E402
from admin.topics import ensure_topics, required_topics  # noqa: E402
from outbox_kit import (  # noqa: E402
    Ledger,
    account,
    lock_holders,
    outbox_rows,
    read_until_complete,
    relay_process,
    run_writers,
    seed_users,
)
from postgres_kit import PostgresServer, running_postgres  # noqa: E402
from producer.config import Settings, load_settings  # noqa: E402
from producer.outbox import Outbox, install  # noqa: E402
from producer.producer import EventProducer, codec_for, producer_config  # noqa: E402

WRITERS = 8
SUBJECTS = [f"auth0|{n}" for n in range(1000)]
WARM_UP_RECORDS = 50_000


@contextlib.contextmanager
def kafka(given: str | None) -> Iterator[str]:
    """The given cluster, or an embedded broker on free ports removed afterwards."""
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as data_dir:
        broker = LocalBroker(port=free_port(), data_dir=Path(data_dir))
        try:
            broker.start()
            yield broker.bootstrap_servers
        finally:
            broker.stop()


def fresh_settings(bootstrap: str) -> Settings:
    """Settings with a topic prefix of their own and the lifecycle topic created, its records
    stamped by the broker when appended (LogAppendTime: the acknowledgement's moment, to the
    millisecond, whoever reads it later)."""
    settings = load_settings(
        bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}."
    )
    lifecycle = [
        replace(s, config={**s.config, "message.timestamp.type": "LogAppendTime"})
        for s in required_topics(settings)
        if s.name == settings.lifecycle_topic
    ]
    ensure_topics(AdminClient(settings.kafka_config()), lifecycle)
    return settings


def produce_plain(settings: Settings, records: Sequence[tuple[bytes, str]]) -> float:
    """Seconds to produce ``records`` (value, key) until all are acknowledged: the ceiling."""
    producer = Producer(producer_config(settings))
    producer.produce(settings.lifecycle_topic, records[0][0], records[0][1].encode())
    producer.flush(30)
    started = time.perf_counter()
    for value, key in records:
        while True:
            try:
                producer.produce(settings.lifecycle_topic, value, key.encode())
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(300)
    return time.perf_counter() - started


def fill_outbox(dsn: str, outbox: Outbox, count: int) -> list[tuple[bytes, str]]:
    """Commit ``count`` user.updated rows (1,000 per transaction); their (value, key)."""
    records: list[tuple[bytes, str]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, count, 1000):
            with conn.transaction():
                writer = outbox.on(conn)
                for n in range(start, min(start + 1000, count)):
                    subject = SUBJECTS[n % len(SUBJECTS)]
                    writer.user_updated({"user_id": subject, "nickname": f"n{n}"})
        for value, key in conn.execute("SELECT value, subject FROM tidings_outbox ORDER BY seq"):
            records.append((bytes(value), key))
    return records


def wait_active(dsn: str, timeout: float = 60.0) -> None:
    """Until a relay holds the leadership lock."""
    deadline = time.monotonic() + timeout
    while not any(granted for _, granted in lock_holders(dsn)):
        if time.monotonic() > deadline:
            raise RuntimeError("no relay became active")
        time.sleep(0.005)


def scenario_throughput(
    pg: PostgresServer, bootstrap: str, events: int, work: Path
) -> dict[str, Any]:
    """Relay drain rate of a committed backlog, and the plain-producer ceiling."""
    dsn = pg.create_database()
    install(dsn)
    settings = fresh_settings(bootstrap)
    records = fill_outbox(dsn, Outbox(settings), events)
    ceiling = produce_plain(fresh_settings(bootstrap), records)
    relay = relay_process(dsn, settings, work / "relay-throughput.log").start()
    try:
        wait_active(dsn)
        started = time.perf_counter()
        while outbox_rows(dsn):
            time.sleep(0.01)
        relay_seconds = time.perf_counter() - started
    finally:
        relay.terminate()
    return {
        "events": events,
        "relay_events_per_s": round(events / relay_seconds),
        "ceiling_events_per_s": round(events / ceiling),
        "relay_to_ceiling": round(ceiling / relay_seconds, 3),
    }


def event_id_of(message: Any) -> str:
    """A lifecycle record's event id (from its header)."""
    return str(dict(message.headers() or [])["tidings-event-id"].decode())


class ArrivalClock:
    """A consumer thread noting when each record was appended to the lifecycle topic (the
    broker's LogAppendTime, in seconds), by ``key_of(record)`` (the event id by default)."""

    def __init__(self, settings: Settings, key_of: Callable[[Any], str] = event_id_of) -> None:
        self.arrived: dict[str, float] = {}
        self._key_of = key_of
        self._stop = threading.Event()
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"bench-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 5,
                    "fetch.error.backoff.ms": 5,
                }
            )
        )
        topic = settings.lifecycle_topic
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(1000, 0.05):
                if message.error() is None:
                    appended = message.timestamp()[1] / 1000
                    self.arrived.setdefault(self._key_of(message), appended)

    def stop(self) -> None:
        """Stop and close the consumer."""
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def scenario_latency(
    pg: PostgresServer, bootstrap: str, rate: float, seconds: float, work: Path
) -> dict[str, Any]:
    """Commit-to-consumer latency with writers paced at ``rate`` events/s."""
    dsn = pg.create_database()
    install(dsn)
    seed_users(dsn, SUBJECTS)
    settings = fresh_settings(bootstrap)
    ledger = Ledger()
    clock = ArrivalClock(settings)
    relay = relay_process(dsn, settings, work / "relay-latency.log").start()
    try:
        wait_active(dsn)
        total = int(rate * seconds)
        started = time.monotonic()
        writers = run_writers(dsn, Outbox(settings), ledger, total, SUBJECTS, WRITERS, rate=rate)
        for writer in writers:
            writer.join()
        written = time.monotonic() - started
        deadline = time.monotonic() + 60
        while not set(ledger.committed) <= set(clock.arrived) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        relay.terminate()
        clock.stop()
    latencies = [
        (clock.arrived[event_id] - committed) * 1000
        for event_id, (_s, _v, committed) in ledger.committed.items()
        if event_id in clock.arrived
    ]
    direct = direct_latencies(bootstrap, rate, seconds)
    return {
        "target_rate": rate,
        "achieved_rate": round(len(ledger.committed) / written),
        "events": len(latencies),
        "missing": len(ledger.committed) - len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "producer_p50_ms": round(percentile(direct, 0.50), 1),
        "producer_p99_ms": round(percentile(direct, 0.99), 1),
    }


def direct_latencies(bootstrap: str, rate: float, seconds: float) -> list[float]:
    """The ceiling of the latency figure, in the same run: the producer library's own emit →
    broker append (ms) at the same rate, no database in between."""
    settings = fresh_settings(bootstrap)
    clock = ArrivalClock(settings)
    emitted: dict[str, float] = {}
    try:
        with EventProducer(settings) as producer:
            started = time.monotonic()
            for n in range(int(rate * seconds)):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                at = time.time()
                user = {"user_id": SUBJECTS[n % len(SUBJECTS)], "nickname": f"n{n}"}
                emitted[producer.user_updated(user)] = at
        deadline = time.monotonic() + 60
        while not set(emitted) <= set(clock.arrived) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        clock.stop()
    return [(clock.arrived[i] - t) * 1000 for i, t in emitted.items() if i in clock.arrived]


def scenario_kills(
    pg: PostgresServer, bootstrap: str, mutations: int, work: Path
) -> dict[str, Any]:
    """The issue's fault run at full size; the account."""
    from kafka_testkit import topic_size

    dsn = pg.create_database()
    install(dsn)
    seed_users(dsn, SUBJECTS)
    settings = fresh_settings(bootstrap)
    ledger = Ledger()
    relay = relay_process(dsn, settings, work / "relay-kills.log").start()
    topic = settings.lifecycle_topic
    started = time.monotonic()
    try:
        wait_active(dsn)
        writers = run_writers(
            dsn, Outbox(settings), ledger, mutations, SUBJECTS, WRITERS, rate=2000
        )
        committed_estimate = mutations * 0.9
        for share in (0.25, 0.50, 0.75):
            while topic_size(settings, topic) < committed_estimate * share:
                time.sleep(0.05)
            relay.kill()
            relay.start()
        for writer in writers:
            writer.join()
        messages = read_until_complete(settings, set(ledger.committed), timeout=300)
        took = time.monotonic() - started
    finally:
        relay.kill()
    result = account(messages, ledger, codec_for(settings))
    return {
        "mutations": mutations,
        "rolled_back": len(ledger.rolled_back),
        "committed": result.committed,
        "delivered": result.distinct,
        "duplicates": result.duplicates,
        "phantom": result.phantom,
        "lost": result.lost,
        "out_of_order": len(result.out_of_order),
        "new_ids_for_old_events": result.new_ids_for_old_events,
        "seconds": round(took, 1),
    }


def warm_up(bootstrap: str) -> None:
    """Untimed records through the broker so its JIT is done before any clock starts."""
    settings = fresh_settings(bootstrap)
    produce_plain(settings, [(b"x" * 600, f"k{n}") for n in range(WARM_UP_RECORDS)])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", default="all", choices=["all", "throughput", "latency", "kills"]
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--mutations", type=int, default=20_000)
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    chosen = {"throughput", "latency", "kills"} if args.scenario == "all" else {args.scenario}
    results: dict[str, Any] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="tidings-bench-outbox-") as work_dir:
        work = Path(work_dir)
        with kafka(args.bootstrap) as bootstrap:
            if not args.bootstrap:
                warm_up(bootstrap)
            for pg in running_postgres():
                if "throughput" in chosen:
                    results["throughput"] = scenario_throughput(pg, bootstrap, args.events, work)
                if "latency" in chosen:
                    results["latency"] = scenario_latency(
                        pg, bootstrap, args.rate, args.seconds, work
                    )
                if "kills" in chosen:
                    results["kills"] = scenario_kills(pg, bootstrap, args.mutations, work)
    if args.json:
        print(json.dumps(results))
    else:
        for name, figures in results.items():
            print(f"{name}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
