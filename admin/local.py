"""``make run``: the whole system on one machine, for a newcomer.

Starts (or reuses) the embedded broker, ensures the topics, starts ``tidings dispatcher run``
and ``tidings admin serve`` as child processes, runs a demo webhook receiver that logs what
it gets, points a demo stream at it, and emits a trickle of lifecycle events with the
producer library. Ctrl-C (or SIGTERM) stops everything it started, children first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from admin.broker import LocalBroker, default_data_dir
from admin.topics import ensure_all
from dispatcher.registry import RegistryView, RegistryWriter
from dispatcher.signing import generate_secret
from dispatcher.streams import Stream
from producer.config import Settings
from producer.producer import AsyncEventProducer
from schemas import constants
from schemas.samples import sample_event

DEMO_STREAM_NAME = "demo receiver"


@dataclass(frozen=True)
class LocalPorts:
    """Where each piece listens."""

    broker: int = 9092
    admin: int = 8080
    receiver: int = 8099


def _say(text: str) -> None:
    print(f"[tidings] {text}", flush=True)


async def _demo_receiver(port: int) -> web.AppRunner:
    """A webhook receiver that logs every event it gets, as an integrator's would."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        obj = body.get("data", {}).get("object", {})
        subject = obj.get("user_id") or obj.get("id") or obj.get("organization", {}).get("id")
        test = " (test)" if body.get("a0purpose") == "test" else ""
        _say(f"receiver got {body.get('type')} {body.get('id')} for {subject}{test}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _ensure_demo_stream(settings: Settings, url: str) -> Stream:
    """Create the demo stream unless one with its name exists (running twice is fine)."""
    view = RegistryView(settings)
    task = asyncio.create_task(view.run())
    await view.caught_up.wait()
    view.stop()
    await task
    for stream in view.streams.values():
        if stream.name == DEMO_STREAM_NAME:
            return stream
    stream = Stream.model_validate(
        {
            "name": DEMO_STREAM_NAME,
            "subscriptions": [{"event_type": "*"}],
            "destination": {"type": "webhook", "configuration": {"webhook_endpoint": url}},
            "signing_secrets": [generate_secret()],
            "delivery": {"start_position": "earliest"},
        }
    )
    return await RegistryWriter(settings).aput(stream)


async def _trickle(settings: Settings, stop: asyncio.Event) -> None:
    """One random lifecycle event every second or so, until stopped."""
    async with AsyncEventProducer(settings) as producer:
        seed = random.randrange(1_000_000)
        while not stop.is_set():
            seed += 1
            event_type = random.choice(constants.EVENT_TYPES)
            event = sample_event(event_type, tenant=settings.tenant, seed=seed)
            event_id = await producer.emit(event)
            _say(f"emitted  {event_type} {event_id}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=random.uniform(0.5, 1.5))


def _child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "admin.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )


def _stop_child(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _say(f"{name} stopped (exit {process.returncode})")


async def run_local(settings: Settings, ports: LocalPorts, data_dir: Path | None = None) -> int:
    """Run everything until Ctrl-C or SIGTERM; returns the exit status."""
    data_dir = data_dir or default_data_dir()
    broker = LocalBroker(port=ports.broker, data_dir=data_dir)
    _say(f"starting Kafka {ports.broker} (data in {data_dir}) ...")
    started_broker = await asyncio.to_thread(broker.start)
    settings = settings.model_copy(
        update={
            "bootstrap_servers": broker.bootstrap_servers,
            "destination_allowlist": [*settings.destination_allowlist, "127.0.0.1"],
        }
    )
    created = await asyncio.to_thread(ensure_all, settings)
    _say(f"topics ready ({len(created)} created)")

    token = os.environ.get("TIDINGS_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "TIDINGS_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "TIDINGS_TOPIC_PREFIX": settings.topic_prefix,
        "TIDINGS_DESTINATION_ALLOWLIST": ",".join(settings.destination_allowlist),
        "TIDINGS_ADMIN_TOKEN": token,
    }
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    receiver = await _demo_receiver(ports.receiver)
    children = {
        "dispatcher": _child(["dispatcher", "run"], env, logs / "dispatcher.log"),
        "admin": _child(
            ["admin", "serve", "--host", "127.0.0.1", "--port", str(ports.admin)],
            env,
            logs / "admin.log",
        ),
    }
    stream = await _ensure_demo_stream(settings, f"http://127.0.0.1:{ports.receiver}/webhook")
    _say(f"demo stream {stream.id} -> http://127.0.0.1:{ports.receiver}/webhook")
    _say(f"dashboard: http://127.0.0.1:{ports.admin}/   admin token: {token}")
    _say(f"process logs in {logs}; Ctrl-C stops everything")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    trickle = asyncio.create_task(_trickle(settings, stop))
    watch = asyncio.create_task(_watch_children(children, stop))
    await stop.wait()
    _say("stopping ...")
    await trickle
    watch.cancel()
    for name, process in children.items():
        await asyncio.to_thread(_stop_child, process, name)
    await receiver.cleanup()
    if started_broker:
        await asyncio.to_thread(broker.stop)
        _say("Kafka stopped")
    return 0


async def _watch_children(
    children: dict[str, subprocess.Popen[bytes]], stop: asyncio.Event
) -> None:
    """Stop everything if a child dies on its own."""
    waits = {
        asyncio.create_task(asyncio.to_thread(process.wait)): name
        for name, process in children.items()
    }
    done, _pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        name = waits[done.pop()]
        _say(f"{name} exited with {children[name].returncode}: stopping")
        stop.set()
