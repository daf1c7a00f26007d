"""The Events API (GET /v1/events): what one SSE connection carries, and its added latency.

The admin server runs as its own process (``tidings admin serve``) against an embedded broker
(or ``--bootstrap``); the client runs here.

* throughput: ``--events`` events are produced first, then one connection reads them all from
  ``from_timestamp=0``. The client counts frames without parsing them (so the figure is the
  server's, not a Python SSE parser's); the ceiling is a plain consumer reading the same
  records in the same run.
* latency: a live connection while events are produced at ``--rate`` per second for
  ``--seconds``; each event's time is set when it is emitted, and the latency is receipt minus
  that time (p50/p99). A plain consumer in a process of its own receives the same events:
  its latency is the ceiling, so the difference is what the Events API adds.

    python bench/events_sse.py [--events 50000] [--rate 1000] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import aiohttp  # noqa: E402
from confluent_kafka import OFFSET_END, Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from admin.broker import free_port  # noqa: E402
from admin.topics import ensure_topics, required_topics  # noqa: E402
from producer.config import Settings, load_settings  # noqa: E402
from producer.producer import EventProducer, codec_for  # noqa: E402
from schemas.ids import new_event_id  # noqa: E402
from schemas.timestamps import utc_now  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "bench_producer", Path(__file__).with_name("producer.py")
)
assert _spec is not None
assert _spec.loader is not None
bench_producer = importlib.util.module_from_spec(_spec)
sys.modules["bench_producer"] = bench_producer  # its dataclasses look their module up
_spec.loader.exec_module(bench_producer)

TOKEN = "bench-token-" + uuid.uuid4().hex


def _produce(settings: Settings, count: int) -> None:
    events = bench_producer.build_events(count)
    with EventProducer(settings) as producer:
        for event in events:
            producer.emit(event)
        assert producer.flush(300) == 0


def _consume_ceiling(settings: Settings, count: int) -> float:
    """Records/s of a plain consumer reading the topic from the start."""
    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    topic = settings.lifecycle_topic
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    seen, start = 0, time.perf_counter()
    while seen < count:
        seen += len([m for m in consumer.consume(1000, 1.0) if m.error() is None])
    elapsed = time.perf_counter() - start
    consumer.close()
    return count / elapsed


async def _wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{base}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the admin server never became ready")


async def _read_all(base: str, count: int) -> float:
    """Events/s one connection delivers from the start of the topic (frames counted)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{base}/v1/events", params={"from_timestamp": "0"}, headers=headers) as answer,
    ):
        assert answer.status == 200, await answer.text()
        seen, pending, start = 0, b"", time.perf_counter()
        async for chunk in answer.content.iter_any():
            frames = (pending + chunk).split(b"\n\n")
            pending = frames.pop()
            seen += sum(1 for f in frames if b'","event":{' in f)
            if seen >= count:
                return count / (time.perf_counter() - start)
    raise RuntimeError("the stream ended early")


def _plain_tail(servers: str, prefix: str, skip_id: str, ready: Any, done: Any, out: Any) -> None:
    """In a process of its own (so that no GIL is shared with the bench): a plain consumer
    following the topic's end, the latency ceiling without the Events API."""
    settings = load_settings(bootstrap_servers=servers, topic_prefix=prefix)
    codec = codec_for(settings)
    topic = settings.lifecycle_topic
    config = {"group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
    consumer = Consumer(settings.kafka_config(**config, **{"fetch.wait.max.ms": 20}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    consumer.consume(1, 1.0)  # join the fetch loop before the producer starts
    ready.set()
    latencies: list[float] = []
    while not done.is_set():
        # One record with a wait, then what is queued: consume(100, t) would hold the first
        # record until a hundred arrived or t passed.
        first = consumer.consume(1, 0.1)
        for message in first + (consumer.consume(99, 0) if first else []):
            if message.error() is not None:
                continue
            now = datetime.now(UTC)
            record = codec.decode_record(message.value() or b"")
            if record["id"] != skip_id:
                latencies.append((now - record["time"]).total_seconds() * 1000)
    consumer.close()
    out.put(latencies)


async def _latency(
    base: str, settings: Settings, rate: int, seconds: float
) -> tuple[list[float], list[float]]:
    """Produce at ``rate``/s into a live connection; the latency of each event, in ms."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    pool = bench_producer.build_events(min(1000, rate))
    latencies: list[float] = []
    spawn = multiprocessing.get_context("spawn")
    ready, done, out = spawn.Event(), spawn.Event(), spawn.Queue()
    plain = spawn.Process(
        target=_plain_tail,
        args=(settings.bootstrap_servers, settings.topic_prefix, pool[0].id, ready, done, out),
    )
    plain.start()
    await asyncio.to_thread(ready.wait, 60)
    total = int(rate * seconds)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{base}/v1/events", headers=headers) as answer,
    ):
        assert answer.status == 200

        async def produce() -> None:
            loop = asyncio.get_running_loop()
            with EventProducer(settings) as producer:
                # Connect (and get the idempotent producer id) before the clock starts:
                # events emitted before that wait ~0.5 s and would be the p99.
                producer.emit(pool[0], wait=True)
                start = loop.time()
                for i in range(total):
                    delay = start + i / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    fresh = pool[i % len(pool)].model_copy(
                        update={"id": new_event_id(), "time": utc_now()}
                    )
                    producer.emit(fresh)
                producer.flush(30)

        task = asyncio.create_task(produce())
        pending = b""
        async for chunk in answer.content.iter_any():
            now = datetime.now(UTC)
            frames = (pending + chunk).split(b"\n\n")
            pending = frames.pop()
            for frame in frames:
                if b'","event":{' not in frame:
                    continue
                data = json.loads(frame.split(b"\ndata: ", 1)[1])
                if data["event"]["id"] == pool[0].id:
                    continue  # the warm-up event
                sent = datetime.fromisoformat(data["event"]["time"])
                latencies.append((now - sent).total_seconds() * 1000)
            if len(latencies) >= total:
                break
        await task
    done.set()
    ceiling: list[float] = await asyncio.to_thread(out.get, True, 30)
    plain.join(10)
    return latencies, ceiling


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(events: int, rate: int, seconds: float, bootstrap: str | None) -> dict[str, Any]:
    """Start the broker and the admin server, measure, and return the figures."""
    with bench_producer.bootstrap_servers(bootstrap) as servers:
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        settings = load_settings(bootstrap_servers=servers, topic_prefix=prefix)
        ensure_topics(AdminClient(settings.kafka_config()), required_topics(settings))
        _produce(settings, events)
        ceiling = _consume_ceiling(settings, events)
        port = free_port()
        env = {
            **os.environ,
            "TIDINGS_BOOTSTRAP_SERVERS": servers,
            "TIDINGS_TOPIC_PREFIX": prefix,
            "TIDINGS_ADMIN_TOKEN": TOKEN,
            "TIDINGS_LOG_LEVEL": "warning",
        }
        tidings = str(Path(sys.executable).with_name("tidings"))
        server = subprocess.Popen(
            [tidings, "admin", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(_wait_ready(base))
            sse_rate = asyncio.run(_read_all(base, events))
            latencies, plain = asyncio.run(_latency(base, settings, rate, seconds))
        finally:
            server.terminate()
            server.wait(30)
    return {
        "events": events,
        "sse_events_per_s": round(sse_rate),
        "consume_ceiling_events_per_s": round(ceiling),
        "sse_to_ceiling_ratio": round(sse_rate / ceiling, 3),
        "paced_rate": rate,
        "latency_events": len(latencies),
        "latency_p50_ms": round(_percentile(latencies, 0.50), 1),
        "latency_p99_ms": round(_percentile(latencies, 0.99), 1),
        "plain_consumer_p50_ms": round(_percentile(plain, 0.50), 1),
        "plain_consumer_p99_ms": round(_percentile(plain, 0.99), 1),
        "cores": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments, run, print a table or one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.events, args.rate, args.seconds, args.bootstrap)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"one SSE connection: {result['sse_events_per_s']:,} events/s "
            f"({result['sse_to_ceiling_ratio']:.2f} of a plain consumer's "
            f"{result['consume_ceiling_events_per_s']:,}/s), {result['events']:,} events\n"
            f"produce -> SSE receipt at {result['paced_rate']:,}/s: "
            f"p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms "
            f"({result['latency_events']:,} events; {result['cores']} cores); a plain consumer "
            f"of the same events: p50 {result['plain_consumer_p50_ms']} ms, "
            f"p99 {result['plain_consumer_p99_ms']} ms (the ceiling)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
