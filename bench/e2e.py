"""End-to-end delivery throughput and latency, as ratios to ceilings measured in the same run.

Every scenario runs the whole path with real parts, each its own process: the producer
library (this process) → Kafka (the embedded broker unless ``--bootstrap``) → the dispatcher
(``tidings dispatcher run``) → a fast local webhook receiver (``bench/receiver.py``). Streams
are written to the registry before the dispatcher starts (``start_position: earliest``), and a
warm-up event reaches every stream before any clock starts.

Figures per scenario:

* sustained deliveries/s: N events produced as fast as possible, wall clock from the first
  produce to the last receipt;
* produce→receive latency p50/p95/p99 (receipt time minus the event's ``time``, which the
  producer sets at creation): at that maximum, and at fixed offered rates (``--rates``, in
  deliveries/s across the scenario's streams, each run ``--paced-seconds`` long);
* the dispatcher's CPU seconds per 1,000 deliveries (over the maximum run) and peak RSS;
* ceilings: (a) the receiver driven by a plain aiohttp client with the dispatcher's default
  ``max_in_flight`` concurrency, (b) a plain confluent-kafka consumer reading the lifecycle
  topic. ``ratio_to_ceiling`` is deliveries/s over the lower of the two.

An embedded broker (no ``--bootstrap``) first carries an untimed 1-stream run of 30,000
events, so that its JIT compiler has finished before any scenario's clock starts.

Scenarios: ``1-stream``, ``10-streams``, ``100-streams`` (every stream reads the same topic),
``isolation`` (9 healthy streams beside one whose endpoint never answers; compared with
``10-streams``, run first if not run already), ``ordered`` (a stream with ``ordering:
subject`` beside the same stream unordered, events cycling through 10,000 users),
``backlog`` (a retry backlog draining after the endpoint recovers). ``all`` runs them in that order.

    python bench/e2e.py [--scenario all] [--events N] [--bootstrap HOST:PORT] [--json]
                        [--rates 500,1000,2000] [--paced-seconds 10] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path, where bench/producer.py would shadow
# the `producer` package: drop that entry before importing the project.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import aiohttp  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

from admin.broker import KAFKA_VERSION  # noqa: E402
from admin.topics import ensure_all  # noqa: E402
from dispatcher.registry import RegistryWriter  # noqa: E402
from dispatcher.streams import DeliverySettings, Stream  # noqa: E402
from producer.config import Settings, load_settings  # noqa: E402
from producer.durations import format_duration  # noqa: E402
from producer.producer import EventProducer  # noqa: E402
from schemas.cloudevents import render_cloudevent_json  # noqa: E402
from schemas.constants import EVENT_TYPES  # noqa: E402
from schemas.ids import new_event_id  # noqa: E402
from schemas.models import LifecycleEvent  # noqa: E402
from schemas.samples import sample_event  # noqa: E402
from schemas.timestamps import utc_now  # noqa: E402

# The bench's own modules, now that the project's packages are imported (and cached).
sys.path.append(str(BENCH))
from dispatcher_process import (  # noqa: E402
    DispatcherProcess,
    Profiler,
    own_time,
    process_cpu_seconds,
)

from receiver import ReceiverControl  # noqa: E402


def _bench_module(filename: str) -> Any:
    """A sibling script loaded under another name (``producer.py`` would shadow the package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{Path(filename).stem}", BENCH / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


#: The given cluster, or an embedded broker on free ports (and its process id).
embedded_broker = _bench_module("producer.py").embedded_broker


@dataclass(frozen=True)
class Scenario:
    """What a scenario runs: healthy streams, dead ones, default events, retry schedule."""

    healthy: int
    dead: int = 0
    events: int = 10_000
    paced: bool = True
    #: Events cycle through this many distinct subjects (None: the sample pool's own).
    subjects: int | None = None


SCENARIOS = {
    "1-stream": Scenario(healthy=1, events=50_000),
    "10-streams": Scenario(healthy=10, events=10_000),
    "100-streams": Scenario(healthy=100, events=2_000),
    "isolation": Scenario(healthy=9, dead=1, events=10_000),
    "ordered": Scenario(healthy=2, events=30_000, subjects=10_000),
    "backlog": Scenario(healthy=1, events=100_000, paced=False),
}
#: The dispatcher's default concurrency per stream: the receiver ceiling's client uses it too.
IN_FLIGHT = int(DeliverySettings.model_fields["max_in_flight"].default)
#: Event types of a scenario with its own subjects (users).
USER_TYPES = tuple(t for t in EVENT_TYPES if t.startswith("user."))
#: Distinct sample events built up front; each produce copies one with a fresh id and time.
POOL_SIZE = 256
WARMUP_EVENTS = 6
#: Events through a fresh embedded broker before any scenario (see ``warm_up_broker``). The
#: JVM's compiler threads were still taking 0.2-0.4 of a core until ~130,000 events had
#: passed (per-thread CPU from /proc during a run), so 30,000 left that inside the 1-stream run.
WARMUP_BROKER_EVENTS = 150_000
#: The dead endpoint's stream gives up on an attempt after this long; it never auto-disables.
DEAD_TIMEOUT = timedelta(seconds=1)
#: Without progress for this long a run is declared stuck.
STALL_SECONDS = 90.0
#: The backlog's first tier must outlast filling it; fills are assumed at least this fast.
BACKLOG_FILL_FLOOR_PER_S = 800


@dataclass
class Load:
    """One timed run: N events at an offered rate (``None``: as fast as possible)."""

    offered_per_s: int | None
    events: int
    deliveries: int
    duplicates: int
    seconds: float
    deliveries_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class Result:
    """One scenario's figures (the maximum run's, plus the paced runs)."""

    scenario: str
    streams: int
    events: int
    deliveries: int
    seconds: float
    deliveries_per_s: float
    receiver_ceiling_per_s: float
    consume_ceiling_per_s: float
    ceiling_per_s: float
    ratio_to_ceiling: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_s_per_1k: float
    rss_mb: float
    paced: list[Load] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


# events --------------------------------------------------------------------------------------
class EventSource:
    """Fresh events cheaply: a pool of samples, each copy with a new id and the current time.

    With ``subjects``, the pool holds user events and each copy is about the next of that
    many users in turn (the record key: an ordered stream's subject)."""

    def __init__(self, tenant: str, subjects: int | None = None) -> None:
        types = USER_TYPES if subjects else EVENT_TYPES
        self._pool = [
            sample_event(types[i % len(types)], tenant=tenant, seed=i) for i in range(POOL_SIZE)
        ]
        self._subjects = subjects
        self._next = 0

    def fresh(self) -> LifecycleEvent:
        """A new event whose ``time`` is now: latency is measured from here."""
        base = self._pool[self._next % POOL_SIZE]
        update: dict[str, Any] = {"id": new_event_id(), "time": utc_now()}
        if self._subjects:
            user = f"auth0|bench{self._next % self._subjects:08d}"
            obj = base.data.object.model_copy(update={"user_id": user})
            update["data"] = base.data.model_copy(update={"object": obj})
        self._next += 1
        return base.model_copy(update=update)

    def template(self) -> LifecycleEvent:
        """A representative event (for the receiver ceiling's request bodies)."""
        return self._pool[0]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 1)


class CpuBudget:
    """CPU seconds each process on the machine spends during a run: the dispatcher, this
    process (the producer library emitting the events, and the harness), the receiver and
    the embedded broker. Reported per 1,000 deliveries and as cores busy, it shows how the
    two cores are shared, which the ratio to the receiver ceiling does not."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start = self._sample()

    def _sample(self) -> dict[str, float]:
        now = {name: process_cpu_seconds(pid) for name, pid in self._pids.items()}
        now["producer and harness"] = time.process_time()
        now["wall"] = time.perf_counter()
        return now

    def per_1k(self, deliveries: int) -> dict[str, float]:
        """CPU seconds per 1,000 deliveries by process, and the cores busy on average."""
        end = self._sample()
        wall = end.pop("wall") - self._start["wall"]
        used = {name: end[name] - self._start[name] for name in end}
        figures = {name: round(cpu / deliveries * 1000, 3) for name, cpu in used.items()}
        figures["cores_busy"] = round(sum(used.values()) / wall, 2)
        return figures


# one scenario's parts ------------------------------------------------------------------------
class Rig:
    """A scenario's fresh topics, streams, producer, receiver and dispatcher."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        receiver: ReceiverControl,
        workdir: Path,
        subjects: int | None = None,
        **overrides: Any,
    ) -> None:
        self.name = name
        self.settings: Settings = load_settings(
            bootstrap_servers=bootstrap,
            topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.",
            destination_allowlist=["127.0.0.1"],  # the receiver: loopback over plain http
            metrics_port=0,
            **overrides,
        )
        ensure_all(self.settings)
        self.receiver = receiver
        self.source = EventSource(self.settings.tenant, subjects)
        self.producer = EventProducer(self.settings)
        self.dispatcher = DispatcherProcess(self.settings, workdir / f"dispatcher-{name}.log")
        self.ok_tags: list[str] = []
        self.dead_tags: list[str] = []
        self.produced = 0
        #: The last timed run's receipts (time, latency) per healthy stream, and its start.
        self.last_rows: dict[str, list[tuple[float, float]]] = {}
        self.last_first = 0.0

    def register(self, kind: str, tags: Sequence[str], **delivery: Any) -> None:
        """Write one stream per tag, all event types, to the registry."""
        writer = RegistryWriter(self.settings)
        for tag in tags:
            stream = Stream.model_validate(
                {
                    "name": f"bench {tag}",
                    "subscriptions": [{"event_type": "*"}],
                    "destination": {
                        "type": "webhook",
                        "configuration": {"webhook_endpoint": self.receiver.url(kind, tag)},
                    },
                    "delivery": {"start_position": "earliest", **delivery},
                }
            )
            writer.put(stream)
        (self.dead_tags if kind == "dead" else self.ok_tags).extend(tags)

    @property
    def streams(self) -> int:
        """Streams of the scenario, healthy and dead."""
        return len(self.ok_tags) + len(self.dead_tags)

    def produce(self, count: int, events_per_s: float | None = None) -> float:
        """Produce ``count`` events (paced when a rate is given); return the first's wall time."""
        first = time.time()
        start = time.perf_counter()
        for i in range(count):
            if events_per_s is not None:
                delay = start + i / events_per_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self.producer.emit(self.source.fresh())
        if self.producer.flush(120) or self.producer.failures:
            raise RuntimeError(f"produce failed: {self.producer.failures[:3]}")
        self.produced += count
        return first

    def wait_for(self, tags: Sequence[str], key: str, target: int) -> dict[str, dict[str, int]]:
        """Poll the receiver until every tag's ``key`` count reaches ``target``."""
        last_total, last_change = -1, time.monotonic()
        while True:
            stats = self.receiver.stats()
            counts = [stats.get(tag, {}).get(key, 0) for tag in tags]
            if all(c >= target for c in counts):
                return stats
            if sum(counts) != last_total:
                last_total, last_change = sum(counts), time.monotonic()
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise RuntimeError(
                    f"{self.name}: stuck at {sum(counts)}/{target * len(tags)} {key}; "
                    f"dispatcher log:\n{self.dispatcher.tail()}"
                )
            time.sleep(0.1)

    def warm_up(self) -> None:
        """One round of events through every stream, so consumers are assigned and connected."""
        self.produce(WARMUP_EVENTS)
        self.wait_for(self.ok_tags, "distinct_ok", WARMUP_EVENTS)
        if self.dead_tags:
            self.wait_for(self.dead_tags, "hanging", 1)
        self.receiver.reset()

    def timed_run(self, events: int, offered_per_s: int | None) -> Load:
        """Produce ``events`` (paced at ``offered_per_s`` deliveries/s) and time the deliveries."""
        self.receiver.reset()
        rate = None if offered_per_s is None else offered_per_s / self.streams
        first = self.produce(events, rate)
        stats = self.wait_for(self.ok_tags, "distinct_ok", events)
        records = self.receiver.records()
        self.last_rows = {tag: records.get(tag, []) for tag in self.ok_tags}
        self.last_first = first
        rows = [row for tag in self.ok_tags for row in records.get(tag, [])]
        latencies = sorted(latency for _at, latency in rows)
        seconds = max(at for at, _latency in rows) - first
        deliveries = len(rows)
        return Load(
            offered_per_s=offered_per_s,
            events=events,
            deliveries=deliveries,
            duplicates=sum(stats[t]["ok_answers"] - stats[t]["distinct_ok"] for t in self.ok_tags),
            seconds=round(seconds, 3),
            deliveries_per_s=round(deliveries / seconds, 1),
            p50_ms=percentile(latencies, 50),
            p95_ms=percentile(latencies, 95),
            p99_ms=percentile(latencies, 99),
        )

    def close(self) -> None:
        """Stop the dispatcher and the producer. Safe to call twice."""
        self.dispatcher.stop()
        self.producer.close()


# ceilings ------------------------------------------------------------------------------------
def receiver_ceiling(receiver: ReceiverControl, template: LifecycleEvent, count: int) -> float:
    """Requests/s the receiver answers to a plain aiohttp client, ``IN_FLIGHT`` at a time."""
    body = render_cloudevent_json(template, stream_id="est_ceiling")
    prefix, suffix = body.split(template.id.encode(), 1)
    receiver.reset()
    rate = asyncio.run(_drive(receiver.url("ok", "ceiling"), prefix, suffix, count))
    delivered = receiver.stats()["ceiling"]["distinct_ok"]
    if delivered != count:
        raise RuntimeError(f"receiver ceiling: {delivered} of {count} recorded")
    receiver.reset()
    return rate


async def _drive(url: str, prefix: bytes, suffix: bytes, count: int) -> float:
    numbers = iter(range(count))
    headers = {"Content-Type": "application/json", "User-Agent": "Tidings-Bench/0.1"}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=1000)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:

        async def worker() -> None:
            for n in numbers:
                event_id = f"evt_{n:022d}"
                body = prefix + event_id.encode() + suffix
                sent = {
                    **headers,
                    "webhook-id": event_id,
                    "webhook-timestamp": str(int(time.time())),
                }
                async with http.post(url, data=body, headers=sent, allow_redirects=False) as answer:
                    await answer.content.read(4096)
                    if answer.status != 200:
                        raise RuntimeError(f"receiver answered {answer.status}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return count / (time.perf_counter() - start)


def consume_ceiling(settings: Settings, at_least: int = 50_000) -> tuple[float, int]:
    """Records/s a plain consumer reads the lifecycle topic at, and the topic's record count.

    The topic is read from the beginning again and again (a first, untimed pass connects and
    fills the page cache) until ``at_least`` records were timed or 20 passes were made, so a
    small topic is measured as well as a large one. Each pass's clock starts when its first
    batch arrives: re-positioning is not what a long-running stream consumer pays for."""
    topic = settings.lifecycle_topic
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"{settings.topic_prefix}bench-ceiling-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        _read_pass(consumer, topic, partitions, total)
        timed, seconds = 0, 0.0
        for _pass in range(20):
            count, elapsed, whole = _read_pass(consumer, topic, partitions, total)
            if count == 0:  # the whole topic comes in one batch: time whole passes instead
                return total / whole, total
            timed, seconds = timed + count, seconds + elapsed
            if timed >= at_least:
                break
        return timed / seconds, total
    finally:
        consumer.close()


def _read_pass(
    consumer: Consumer, topic: str, partitions: list[int], total: int
) -> tuple[int, float, float]:
    """Read the topic once: records after the first batch, seconds since the first batch
    arrived, and seconds for the whole pass."""
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    start = time.perf_counter()
    read, after_first, first = 0, 0, None
    while read < total:
        # Ask for no more than is left: consume() waits out its timeout for a full batch.
        batch = consumer.consume(min(1000, total - read), 1.0)
        count = sum(1 for m in batch if m.error() is None)
        read += count
        if first is None and count:
            first = time.perf_counter()
        elif count:
            after_first += count
    end = time.perf_counter()
    return after_first, end - (first or start), end - start


# scenarios -----------------------------------------------------------------------------------
def warm_up_broker(bootstrap: str, receiver: ReceiverControl, options: Options) -> None:
    """Run the 1-stream path untimed through a freshly started embedded broker.

    A new JVM spends its first tens of thousands of requests compiling the produce and fetch
    paths (the JIT then takes most of a core): a broker in service is long past that, and
    the scenarios' figures are meant for one."""
    rig = Rig("broker-warm-up", bootstrap, receiver, options.workdir)
    try:
        rig.register("ok", ["warm-up"])
        rig.dispatcher.start()
        rig.warm_up()
        rig.timed_run(WARMUP_BROKER_EVENTS, None)
    finally:
        rig.close()
    receiver.reset()


@dataclass
class Options:
    """What the command line asked for."""

    events: int | None
    rates: list[int]
    paced_seconds: float
    profile_dir: Path | None
    workdir: Path
    #: The embedded broker's JVM (None for a cluster given with --bootstrap).
    broker_pid: int | None = None


def run_scenario(
    name: str, bootstrap: str, receiver: ReceiverControl, options: Options, done: dict[str, Result]
) -> Result:
    """Run one delivery scenario (not ``backlog``) and return its figures."""
    spec = SCENARIOS[name]
    events = options.events or spec.events
    rig = Rig(name, bootstrap, receiver, options.workdir, spec.subjects)
    try:
        rig.register("ok", [f"s{i}" for i in range(spec.healthy)])
        if spec.dead:
            rig.register(
                "dead",
                [f"dead{i}" for i in range(spec.dead)],
                timeout=DEAD_TIMEOUT,
                auto_disable_after=10**9,
            )
        rig.dispatcher.start()
        rig.warm_up()
        load_avg = os.getloadavg()[0]  # the machine may be shared: say how busy it was
        profiler = _profiler(rig, options)
        cpu_before = rig.dispatcher.cpu_seconds()
        budget = CpuBudget(
            {
                "dispatcher": rig.dispatcher.pid,
                "receiver": receiver.pid,
                "broker": options.broker_pid,
            }
        )
        maximum = rig.timed_run(events, None)
        cpu = rig.dispatcher.cpu_seconds() - cpu_before
        cpu_by_process = budget.per_1k(maximum.deliveries)
        profile = _stop_profiler(profiler)
        paced = []
        if spec.paced:
            for rate in options.rates:
                paced_events = max(
                    1, min(events, round(rate / rig.streams * options.paced_seconds))
                )
                paced.append(rig.timed_run(paced_events, rate))
        rss = rig.dispatcher.peak_rss_mb()
        extra: dict[str, Any] = {
            "duplicates": maximum.duplicates,
            "load_avg_1m": load_avg,
            "cpu_s_per_1k_by_process": cpu_by_process,
        }
        if profile:
            extra["profile_top"] = profile
    finally:
        rig.close()
    result = _result(name, rig, events, maximum, cpu, rss, paced, extra, options)
    if name == "isolation":
        baseline = done.get("10-streams")
        if baseline is None or baseline.events != events:
            baseline = run_scenario("10-streams", bootstrap, receiver, options, done)
            done["10-streams"] = baseline
        result.extra.update(_isolation_ratios(result, baseline))
    return result


def _result(
    name: str,
    rig: Rig,
    events: int,
    maximum: Load,
    cpu: float,
    rss: float,
    paced: list[Load],
    extra: dict[str, Any],
    options: Options,
) -> Result:
    """Measure the ceilings (the dispatcher stopped) and assemble the figures."""
    receiver_rate = receiver_ceiling(
        rig.receiver, rig.source.template(), min(max(2_000, maximum.deliveries), 20_000)
    )
    consume_rate, consumed = consume_ceiling(rig.settings)
    extra["consumed_records"] = consumed
    ceiling = min(receiver_rate, consume_rate)
    return Result(
        scenario=name,
        streams=rig.streams,
        events=events,
        deliveries=maximum.deliveries,
        seconds=maximum.seconds,
        deliveries_per_s=maximum.deliveries_per_s,
        receiver_ceiling_per_s=round(receiver_rate, 1),
        consume_ceiling_per_s=round(consume_rate, 1),
        ceiling_per_s=round(ceiling, 1),
        ratio_to_ceiling=round(maximum.deliveries_per_s / ceiling, 3),
        p50_ms=maximum.p50_ms,
        p95_ms=maximum.p95_ms,
        p99_ms=maximum.p99_ms,
        cpu_s_per_1k=round(cpu / maximum.deliveries * 1000, 3),
        rss_mb=round(rss, 1),
        paced=paced,
        extra=extra,
    )


def _isolation_ratios(isolation: Result, baseline: Result) -> dict[str, Any]:
    """Healthy streams beside a dead one, against ``10-streams``: per-stream throughput, p99."""
    healthy = isolation.streams - SCENARIOS["isolation"].dead
    ratios: dict[str, Any] = {
        "healthy_streams": healthy,
        "throughput_ratio_vs_10_streams": round(
            (isolation.deliveries_per_s / healthy) / (baseline.deliveries_per_s / baseline.streams),
            3,
        ),
        "p99_ratio_vs_10_streams": _ratio(isolation.p99_ms, baseline.p99_ms),
    }
    base_paced = {load.offered_per_s: load for load in baseline.paced}
    for load in isolation.paced:
        other = base_paced.get(load.offered_per_s)
        if other is not None:
            ratios[f"p99_ratio_vs_10_streams_at_{load.offered_per_s}"] = _ratio(
                load.p99_ms, other.p99_ms
            )
    return ratios


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def run_ordered(bootstrap: str, receiver: ReceiverControl, options: Options) -> Result:
    """One stream ordered per subject beside the same stream unordered, both reading the same
    events (cycling through 10,000 users) in one dispatcher at the same time: on a shared
    machine whose load changes from minute to minute, only side by side is the comparison
    fair. Each stream's rate is its deliveries within the window both were still busy; p99
    at each ``--rates`` value is at that many events/s (so deliveries/s per stream)."""
    spec = SCENARIOS["ordered"]
    events = options.events or spec.events
    rig = Rig("ordered", bootstrap, receiver, options.workdir, spec.subjects)
    try:
        rig.register("ok", ["unordered"])
        rig.register("ok", ["ordered"], ordering="subject")
        rig.dispatcher.start()
        rig.warm_up()
        load_avg = os.getloadavg()[0]
        cpu_before = rig.dispatcher.cpu_seconds()
        maximum = rig.timed_run(events, None)
        cpu = rig.dispatcher.cpu_seconds() - cpu_before
        side_by_side: dict[str, Any] = {"max": _side_by_side(rig)}
        paced = []
        for rate in options.rates:
            count = max(1, round(rate * options.paced_seconds))
            paced.append(rig.timed_run(count, rate * rig.streams))
            side_by_side[f"{rate}/s"] = _side_by_side(rig)
        rss = rig.dispatcher.peak_rss_mb()
    finally:
        rig.close()
    extra: dict[str, Any] = {
        "duplicates": maximum.duplicates,
        "load_avg_1m": load_avg,
        "side_by_side": side_by_side,
    }
    return _result("ordered", rig, events, maximum, cpu, rss, paced, extra, options)


def _side_by_side(rig: Rig) -> dict[str, Any]:
    """Each stream's deliveries/s within the window both were busy, and its p99; the ordered
    stream's as ratios to the unordered one's."""
    end = min(max(at for at, _latency in rows) for rows in rig.last_rows.values())
    window = max(end - rig.last_first, 1e-9)
    figures: dict[str, Any] = {}
    for tag, rows in rig.last_rows.items():
        latencies = sorted(latency for _at, latency in rows)
        figures[tag] = {
            "deliveries_per_s": round(sum(1 for at, _l in rows if at <= end) / window, 1),
            "p99_ms": percentile(latencies, 99),
        }
    ordered, unordered = figures["ordered"], figures["unordered"]
    figures["throughput_ratio"] = _ratio(ordered["deliveries_per_s"], unordered["deliveries_per_s"])
    figures["p99_ratio"] = _ratio(ordered["p99_ms"], unordered["p99_ms"])
    return figures


def run_backlog(bootstrap: str, receiver: ReceiverControl, options: Options) -> Result:
    """N events fail into the first retry tier; once all are due, the endpoint has recovered
    and a dispatcher (re)starts, and the tier drains. The dispatcher is restarted because a
    running one would retry each record as soon as it is due, at the pace the backlog filled;
    the restart lets the whole backlog be due at once, so the drain runs flat out."""
    events = options.events or SCENARIOS["backlog"].events
    tier = timedelta(seconds=max(15, math.ceil(events / BACKLOG_FILL_FLOOR_PER_S) + 10))
    rig = Rig("backlog", bootstrap, receiver, options.workdir, retry_schedule=[tier, tier * 5])
    try:
        rig.register("fail", ["backlog"], auto_disable_after=10**9)  # it fails on purpose
        receiver.recover(True)
        rig.dispatcher.start()
        rig.warm_up()
        receiver.recover(False)
        first = rig.produce(events)
        rig.wait_for(["backlog"], "failed", events)
        filled_at = time.time()
        _wait_for_records(rig.settings, rig.settings.retry_topic(tier), events)
        rig.dispatcher.stop()
        retried = receiver.stats()["backlog"]["retried_while_failing"]
        if retried:
            raise RuntimeError(
                f"{retried} records were retried while the endpoint failed: filling took longer "
                f"than the {tier} tier; lower BACKLOG_FILL_FLOOR_PER_S"
            )
        receiver.reset()
        receiver.recover(True)
        time.sleep(max(0.0, filled_at + tier.total_seconds() + 1 - time.time()))
        load_avg = os.getloadavg()[0]
        restarted = time.time()
        rig.dispatcher.start()
        cpu_before = rig.dispatcher.cpu_seconds()
        rig.wait_for(["backlog"], "distinct_ok", events)
        cpu = rig.dispatcher.cpu_seconds() - cpu_before
        rss = rig.dispatcher.peak_rss_mb()
        stats = receiver.stats()["backlog"]
        receipts = sorted(at for at, _latency in receiver.records()["backlog"])
    finally:
        rig.close()
        receiver.recover(True)
    drain = receipts[-1] - receipts[0]
    maximum = Load(
        offered_per_s=None,
        events=events,
        deliveries=len(receipts),
        duplicates=stats["ok_answers"] - stats["distinct_ok"],
        seconds=round(drain, 3),
        deliveries_per_s=round(len(receipts) / drain, 1),
        p50_ms=None,  # latencies from the event's time include the tier's delay: not shown
        p95_ms=None,
        p99_ms=None,
    )
    extra = {
        "tier": format_duration(tier),
        "fill_s": round(filled_at - first, 3),
        "fill_per_s": round(events / (filled_at - first), 1),
        "restart_to_drained_s": round(receipts[-1] - restarted, 3),
        "duplicates": maximum.duplicates,
        "load_avg_1m": load_avg,
    }
    return _result("backlog", rig, events, maximum, cpu, rss, [], extra, options)


def _wait_for_records(settings: Settings, topic: str, count: int, timeout: float = 60.0) -> None:
    """Wait until ``topic`` holds ``count`` records (the dispatcher's tier writes landed)."""
    consumer = Consumer(settings.kafka_config(**{"group.id": f"bench-{uuid.uuid4().hex}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            held = sum(
                high - low
                for low, high in (
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    for p in partitions
                )
            )
            if held >= count:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{topic} holds {held} of {count} records")
    finally:
        consumer.close()


def _profiler(rig: Rig, options: Options) -> Profiler | None:
    if options.profile_dir is None:
        return None
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    return Profiler(rig.dispatcher.pid, options.profile_dir / f"{rig.name}.raw")


def _stop_profiler(profiler: Profiler | None) -> list[list[Any]]:
    if profiler is None:
        return []
    profiler.stop()
    return [
        [frame, samples, round(share, 4)] for frame, samples, share in own_time(profiler.output)
    ]


# output --------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(results: Sequence[Result], header: str) -> str:
    """The human-readable table, then ceilings, comparisons and profiles."""
    columns = (
        f"{'scenario':<13}{'load':>10}{'deliveries':>12}{'seconds':>9}{'deliv/s':>10}"
        f"{'ratio':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'cpu s/1k':>10}{'rss MB':>8}"
    )
    lines = [header, "", columns]
    for r in results:
        lines.append(
            f"{r.scenario:<13}{'max':>10}{r.deliveries:>12,}{r.seconds:>9.2f}"
            f"{r.deliveries_per_s:>10,.0f}{r.ratio_to_ceiling:>7.2f}{_ms(r.p50_ms):>9}"
            f"{_ms(r.p95_ms):>9}{_ms(r.p99_ms):>9}{r.cpu_s_per_1k:>10.3f}{r.rss_mb:>8.0f}"
        )
        for load in r.paced:
            lines.append(
                f"{'':<13}{f'{load.offered_per_s:,}/s':>10}{load.deliveries:>12,}"
                f"{load.seconds:>9.2f}{load.deliveries_per_s:>10,.0f}{'':>7}{_ms(load.p50_ms):>9}"
                f"{_ms(load.p95_ms):>9}{_ms(load.p99_ms):>9}"
            )
    lines += [
        "",
        "ceilings (same run): receiver = aiohttp client with "
        f"{IN_FLIGHT} in flight; consume = plain consumer over the lifecycle topic",
    ]
    for r in results:
        lines.append(
            f"  {r.scenario:<13} receiver {r.receiver_ceiling_per_s:>9,.0f}/s   "
            f"consume {r.consume_ceiling_per_s:>10,.0f}/s   ratio uses {r.ceiling_per_s:,.0f}/s"
        )
    budgets = [r for r in results if r.extra.get("cpu_s_per_1k_by_process")]
    if budgets:
        lines += [
            "",
            "CPU s per 1k deliveries during the max run, by process (cores busy of "
            f"{os.cpu_count()}):",
        ]
        for r in budgets:
            figures = dict(r.extra["cpu_s_per_1k_by_process"])
            busy = figures.pop("cores_busy")
            parts = ", ".join(f"{name} {value:.3f}" for name, value in figures.items())
            lines.append(f"  {r.scenario:<13} {parts}; {busy:.2f} cores busy")
    for r in results:
        if r.scenario == "isolation":
            pairs = ", ".join(f"{k} {v}" for k, v in r.extra.items() if "ratio" in k)
            lines += ["", f"isolation (healthy streams vs 10-streams): {pairs}"]
        if r.scenario == "ordered":
            lines += [
                "",
                "ordered beside the same stream unordered (10,000 subjects, side by side):",
            ]
            for load, f in r.extra["side_by_side"].items():
                lines.append(
                    f"  {load:>8}: ordered {f['ordered']['deliveries_per_s']:,.0f}/s "
                    f"p99 {_ms(f['ordered']['p99_ms'])} ms, unordered "
                    f"{f['unordered']['deliveries_per_s']:,.0f}/s p99 "
                    f"{_ms(f['unordered']['p99_ms'])} ms: throughput "
                    f"{f['throughput_ratio']}x, p99 {f['p99_ratio']}x"
                )
        if r.scenario == "backlog":
            e = r.extra
            lines += [
                "",
                f"backlog: {r.events:,} events failed into the {e['tier']} tier in {e['fill_s']} s "
                f"({e['fill_per_s']:,.0f}/s); after recovery and restart drained at "
                f"{r.deliveries_per_s:,.0f}/s ({e['restart_to_drained_s']} s from restart)",
            ]
        if r.extra.get("profile_top"):
            lines += ["", f"dispatcher profile, {r.scenario} max run (own time, GIL held, py-spy):"]
            lines += [
                f"  {share * 100:5.1f}%  {samples:>7}  {frame}"
                for frame, samples, share in r.extra["profile_top"]
            ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments, run the scenarios, print the table or JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--events", type=int, help="events per scenario (default: its own)")
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    parser.add_argument("--rates", default="500,1000,2000", help="offered deliveries/s")
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="length of paced runs")
    parser.add_argument("--profile", type=Path, help="py-spy each maximum run into this dir")
    parser.add_argument(
        "--logs", type=Path, help="keep the dispatchers' logs and results.jsonl in this dir"
    )
    args = parser.parse_args(argv)
    if args.events is not None and args.events < 1:
        parser.error("--events must be positive")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results: dict[str, Result] = {}
    with (
        tempfile.TemporaryDirectory(prefix="tidings-e2e-logs-") as workdir,
        embedded_broker(args.bootstrap) as (servers, broker_pid),
    ):
        options = Options(
            events=args.events,
            rates=[int(r) for r in args.rates.split(",") if r],
            paced_seconds=args.paced_seconds,
            profile_dir=args.profile,
            workdir=args.logs or Path(workdir),
            broker_pid=broker_pid,
        )
        receiver = ReceiverControl().start()
        try:
            if args.bootstrap is None:
                warm_up_broker(servers, receiver, options)
            for name in names:
                if name == "backlog":
                    results[name] = run_backlog(servers, receiver, options)
                elif name == "ordered":
                    results[name] = run_ordered(servers, receiver, options)
                else:
                    results[name] = run_scenario(name, servers, receiver, options, results)
                line = json.dumps(asdict(results[name]))
                if args.json:  # as each finishes: a long run shows progress
                    print(line, flush=True)
                if args.logs:
                    with open(args.logs / "results.jsonl", "a") as out:
                        print(line, file=out)
        finally:
            receiver.stop()
    if not args.json:
        broker = f"embedded Kafka {KAFKA_VERSION}" if args.bootstrap is None else "external"
        header = (
            f"Tidings end-to-end: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
            f"broker {servers} ({broker})"
        )
        ordered = [results[n] for n in SCENARIOS if n in results]
        print(render(ordered, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
