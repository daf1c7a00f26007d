"""A replicated cluster loses a broker: three KRaft brokers, every Tidings topic with three
replicas and ``min.insync.replicas`` 2; the broker leading the lifecycle partitions is
killed with SIGKILL during a 20,000-event run and started again later. The producer library,
the dispatcher process and the admin service run on without a restart, and no event is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from admin.cluster import LocalCluster
from admin_kit import TOKEN, AdminProcess
from dispatch_kit import DispatcherProcess, TidingsProcess, register, until, webhook_stream
from kafka_testkit import fresh_settings
from producer.config import Settings
from reliability.accounting import leftovers, settle
from reliability.restartable_receiver import RestartableReceiver
from reliability.steady_producer import SteadyProducer
from reliability.test_dispatcher_kill import errors_in

pytestmark = pytest.mark.kafka

EVENTS = 20_000
PER_SECOND = 1_000
#: Events produced when the leader is killed, and when it is started again.
KILL_AT = 6_000
RESTART_AT = 14_000
REPLICAS = 3
MIN_INSYNC = 2


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three brokers of the test's own on free ports and in a temporary directory, killed
    afterwards (their data is thrown away); their logs are printed when they fail to start."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), size=REPLICAS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()


@pytest.fixture
def settings(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for the cluster asking for replicated topics (created by the test itself,
    through ``tidings topics ensure``)."""
    return fresh_settings(
        monkeypatch,
        cluster.bootstrap_servers,
        replication_factor=REPLICAS,
        min_insync_replicas=MIN_INSYNC,
    )


def ensure_topics_with_the_cli(settings: Settings, log: Path) -> None:
    """``tidings topics ensure`` with the replication settings in its environment."""
    ensure = TidingsProcess(
        settings,
        log,
        ("topics", "ensure"),
        env={
            "TIDINGS_REPLICATION_FACTOR": str(settings.replication_factor),
            "TIDINGS_MIN_INSYNC_REPLICAS": str(settings.min_insync_replicas),
        },
    )
    ensure.start()
    assert ensure.process.wait(60) == 0, log.read_text()


def assert_replicated(cluster: LocalCluster, settings: Settings) -> None:
    """Every Tidings topic has three in-sync replicas per partition and min.insync.replicas 2."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(settings.topic_prefix)]
    assert settings.lifecycle_topic in names
    for name in names:
        for number, partition in cluster.partitions(name).items():
            assert len(partition.replicas) == REPLICAS, (name, number, partition.replicas)
            assert len(partition.isrs) == REPLICAS, (name, number, partition.isrs)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result(10)["min.insync.replicas"].value == str(MIN_INSYNC), resource


def victim_of(cluster: LocalCluster, settings: Settings) -> tuple[int, list[int], list[str]]:
    """The broker to kill: of those leading most lifecycle partitions, the group coordinator
    (leader of the one consumer-offsets partition) if it is one of them, else the active
    controller if it is. Returns it, the lifecycle partitions it leads and its other roles."""
    led: dict[int, list[int]] = {}
    for number, partition in sorted(cluster.partitions(settings.lifecycle_topic).items()):
        led.setdefault(partition.leader, []).append(number)
    roles = {
        "group coordinator": cluster.partitions("__consumer_offsets")[0].leader,
        "controller": cluster.controller(),
    }
    victim = max(led, key=lambda node: (len(led[node]), *(n == node for n in roles.values())))
    assert victim > 0, led
    return victim, led[victim], [role for role, node in roles.items() if node == victim]


async def admin_call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One request to the admin service; the status and the JSON body."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.request(method, path, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def admin_answers(
    http: aiohttp.ClientSession, method: str, path: str, timeout: float, body: Any = None
) -> tuple[float, Any]:
    """Call until the admin service answers 2xx (or fail after ``timeout``); the seconds it
    took and the body. Refused connections count as no answer (the process starting)."""
    started = time.monotonic()
    last: tuple[int, Any] = (0, None)
    while time.monotonic() - started < timeout:
        try:
            last = await admin_call(http, method, path, body)
        except aiohttp.ClientConnectionError as exc:
            last = (0, str(exc))
        if 200 <= last[0] < 300:
            return time.monotonic() - started, last[1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{method} {path} answered {last} for {timeout}s")


def longest_gap(receiver: RestartableReceiver, after: float) -> float:
    """The longest pause between two requests the receiver got after ``after``."""
    times = [after, *(r.at for r in receiver.requests if r.at >= after)]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def admin_after_kill(
    http: aiohttp.ClientSession,
    stream_id: str,
    receiver: RestartableReceiver,
    produced_after_kill: Callable[[], set[str]],
) -> str:
    """The admin service, with a broker gone: it is ready, creates a stream (a registry
    write) and lists it, and shows the delivery of an event produced after the kill (its
    view still follows the delivery log). Returns how long each took."""
    ready, _ = await admin_answers(http, "GET", "/readyz", timeout=30)
    body = {
        "name": "created after the kill",
        "status": "disabled",  # kept out of the account: it delivers nothing
        "subscriptions": [{"event_type": "user.created"}],
        "destination": {
            "type": "webhook",
            "configuration": {"webhook_endpoint": receiver.url("other")},
        },
    }
    created_in, created = await admin_answers(http, "POST", "/v1/event-streams", 30, body)
    _, listing = await admin_answers(http, "GET", "/v1/event-streams", timeout=30)
    listed = {s["id"] for s in listing["event_streams"]}
    assert {stream_id, created["id"]} <= listed, listed

    def delivered_after_kill() -> list[str]:
        fresh = produced_after_kill()
        return [r.event_id for r in receiver.requests if r.status == 200 and r.event_id in fresh]

    await receiver.wait_until(lambda: delivered_after_kill() != [], 60)
    path = f"/v1/event-streams/{stream_id}/deliveries/{delivered_after_kill()[0]}"
    shown_in, detail = await admin_answers(http, "GET", path, timeout=30)
    assert any(a["status"] == "success" for a in detail["attempts"]), detail
    return (
        f"ready {ready:.1f}s, stream created {created_in:.1f}s, the delivery of an event "
        f"produced after the kill shown {shown_in:.1f}s"
    )


async def back_in_sync(cluster: LocalCluster, topic: str, node: int, timeout: float) -> float:
    """Wait until ``node`` is an in-sync replica of every partition of ``topic`` again;
    the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        partitions = await asyncio.to_thread(cluster.partitions, topic)
        if all(node in p.isrs for p in partitions.values()):
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"broker {node} not back in sync on {topic} after {timeout}s")


async def test_killing_the_lifecycle_leader_loses_nothing_and_restarts_nothing(
    cluster: LocalCluster, settings: Settings, receiver: RestartableReceiver, tmp_path: Path
) -> None:
    """20,000 events at up to 1,000/s, 10% answered 503 (so retry tiers and dead letters are
    in play): the broker leading the lifecycle partitions is SIGKILLed once 6,000 events
    are produced and started again at 14,000. Every event is delivered or dead-lettered,
    nothing is left pinned or waiting in a tier, the same producer acknowledged every
    event, the same dispatcher and admin processes ran throughout (the admin answering
    after the kill), and the restarted broker is back in sync."""
    seed = random.SystemRandom().randrange(2**32)
    print(f"\nseed={seed}")
    rng = random.Random(seed)
    receiver.script = lambda _request, _seen: 503 if rng.random() < 0.1 else 200
    t0 = time.monotonic()
    ensure_topics_with_the_cli(settings, tmp_path / "topics.log")
    assert_replicated(cluster, settings)
    (stream,) = register(settings, webhook_stream(receiver.url()))
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    admin = AdminProcess(settings, tmp_path / "admin.log")
    dispatcher.start()
    admin.start()
    pids = (dispatcher.process.pid, admin.process.pid)
    # The library's own librdkafka settings: no longer timeouts than a service would have.
    producer = SteadyProducer(settings, PER_SECOND, total=EVENTS, kafka_overrides={})
    try:
        async with aiohttp.ClientSession(admin.url) as http:
            await admin_answers(http, "GET", "/readyz", timeout=60)
            print(f"topics, dispatcher and admin ready t={time.monotonic() - t0:.1f}s")
            producer.start()
            await until(lambda: len(producer.ids) >= KILL_AT, 90)

            victim, partitions, roles = victim_of(cluster, settings)
            killed_at = time.monotonic()
            produced_at_kill = len(producer.ids)
            await asyncio.to_thread(cluster.node(victim).kill)
            print(
                f"killed broker {victim} (leader of lifecycle partitions {partitions}; "
                f"{', '.join(roles) or 'no other role'}) at {produced_at_kill} produced, "
                f"{len(receiver.requests)} requests, t={killed_at - t0:.1f}s"
            )
            answers = await admin_after_kill(
                http, stream.id, receiver, lambda: set(producer.ids[produced_at_kill:])
            )
            print(f"admin after the kill: {answers}")

            await until(lambda: len(producer.ids) >= RESTART_AT, 90)
            restart = asyncio.create_task(asyncio.to_thread(cluster.node(victim).start))
            print(f"restarting broker {victim} t={time.monotonic() - t0:.1f}s")

            await asyncio.to_thread(producer.join, 90)
            ids = await asyncio.to_thread(producer.stop)
            print(f"produced and acknowledged t={time.monotonic() - t0:.1f}s")
            account = await settle(receiver, settings, stream.id, ids, timeout=60)
            left = await leftovers(settings, stream.id, timeout=20)
            print(f"settled t={time.monotonic() - t0:.1f}s")
            await restart
            await back_in_sync(cluster, settings.lifecycle_topic, victim, 60)
            print(f"broker {victim} in sync again t={time.monotonic() - t0:.1f}s")
            status, _ = await admin_call(http, "GET", "/readyz")
            alive = (dispatcher.alive(), admin.alive())
            same = (dispatcher.process.pid, admin.process.pid) == pids
    finally:
        await asyncio.to_thread(dispatcher.terminate)
        await asyncio.to_thread(admin.terminate)
    print(f"deliveries paused at most {longest_gap(receiver, killed_at):.1f}s after the kill")
    if account.lost:
        print(errors_in(tmp_path / "dispatcher.log"))
    print(f"leader kill -9: {account.line()} {left.line()}")
    account.assert_nothing_lost()
    assert len(ids) == EVENTS
    assert left.pinned == 0, "every lifecycle record's offset was committed"
    assert left.in_tiers == 0, "every retry-tier record was passed"
    assert alive == (True, True), "the dispatcher and admin processes are running"
    assert same, "and they are the processes started before the kill"
    assert status == 200, "the admin service is ready at the end"
