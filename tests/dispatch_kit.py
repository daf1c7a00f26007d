"""Helpers for dispatcher tests: streams, a running in-process dispatcher, event producing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from dispatcher.registry import RegistryWriter
from dispatcher.service import Dispatcher
from dispatcher.streams import Stream
from producer.config import Settings
from producer.producer import EventProducer
from schemas import constants
from schemas.samples import sample_event


def webhook_stream(url: str, *, types: list[str] | None = None, **fields: Any) -> Stream:
    """A webhook stream for ``url`` (all event types unless ``types``)."""
    destination = {"type": "webhook", "configuration": {"webhook_endpoint": url}}
    destination["configuration"].update(fields.pop("configuration", {}))
    data: dict[str, Any] = {
        "name": fields.pop("name", "test stream"),
        "subscriptions": [{"event_type": t} for t in (types or ["*"])],
        "destination": destination,
        **fields,
    }
    return Stream.model_validate(data)


def register(settings: Settings, *streams: Stream) -> list[Stream]:
    """Write streams to the registry topic."""
    writer = RegistryWriter(settings)
    return [writer.put(stream) for stream in streams]


@contextlib.asynccontextmanager
async def running_dispatcher(settings: Settings, **kwargs: Any) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in this event loop, stopped at the end."""
    dispatcher = Dispatcher(settings, **kwargs)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()


def produce_events(
    settings: Settings, count: int, types: tuple[str, ...] = constants.EVENT_TYPES
) -> list[str]:
    """Produce ``count`` sample events (cycling through ``types``); return their ids."""
    ids = []
    with EventProducer(settings) as producer:
        for i in range(count):
            event = sample_event(types[i % len(types)], tenant=settings.tenant, seed=i)
            ids.append(producer.emit(event))
        assert producer.flush(30) == 0
    return ids


def with_schedule(settings: Settings, schedule: list[str]) -> Settings:
    """The same settings with another retry schedule, its tier topics created."""
    from admin.topics import ensure_all

    changed = Settings.model_validate(
        {**settings.model_dump(exclude={"retry_schedule"}), "retry_schedule": schedule}
    )
    ensure_all(changed)
    return changed


async def until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` is true: for dispatcher state that has no event to await."""
    import asyncio

    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling in-process state, nothing to await
            await asyncio.sleep(0.05)


def headers_of(message: Any) -> dict[str, str]:
    """A record's headers decoded to text."""
    return {k: (v or b"").decode() for k, v in message.headers() or ()}


class TidingsProcess:
    """A ``tidings`` command as a real child process, configured by the environment from
    ``settings``, for crash and signal tests."""

    def __init__(
        self,
        settings: Settings,
        log_path: Any,
        command: tuple[str, ...],
        env: dict[str, str] | None = None,
    ) -> None:
        import json
        import os

        self.env = {
            **os.environ,
            "TIDINGS_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "TIDINGS_TOPIC_PREFIX": settings.topic_prefix,
            "TIDINGS_RETRY_SCHEDULE": json.dumps(
                [f"{d.total_seconds():g}s" for d in settings.retry_schedule]
            ),
            "TIDINGS_LIFECYCLE_PARTITIONS": str(settings.lifecycle_partitions),
            "TIDINGS_INTERNAL_PARTITIONS": str(settings.internal_partitions),
            "TIDINGS_METRICS_PORT": "0",
            "TIDINGS_SECRETS_KEY": settings.secrets_key.get_secret_value()
            if settings.secrets_key
            else "",
            "TIDINGS_DESTINATION_ALLOWLIST": ",".join(settings.destination_allowlist),
            # A history file of the process's own, beside its log (never the user's).
            "TIDINGS_HISTORY_PATH": str(Path(log_path).parent / "history.sqlite3"),
            **(env or {}),
        }
        self.command = command
        self.log_path = log_path
        self.process: Any = None

    def start(self) -> None:
        """Start the process (logs appended to ``log_path``)."""
        import subprocess
        import sys

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "admin.cli", *self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        """Whether the process started last is still running."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to commit or clean up."""
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait for the exit; returns the exit status."""
        self.process.terminate()
        return int(self.process.wait(timeout))


class DispatcherProcess(TidingsProcess):
    """``tidings dispatcher run`` as a real child process."""

    def __init__(self, settings: Settings, log_path: Any) -> None:
        super().__init__(settings, log_path, ("dispatcher", "run"))


def old_record(
    settings: Settings, url: str, auth: dict[str, Any] | None = None
) -> tuple[str, bytes]:
    """A registry record as an older Tidings wrote it, before today's checks of endpoint URLs
    and header values: secrets encrypted, everything else as given."""
    import json

    from dispatcher.secret_box import SecretBox
    from schemas.ids import new_stream_id

    box = SecretBox.from_settings(settings)
    secret_fields = {"token", "password", "header_value"}
    configuration: dict[str, Any] = {"webhook_endpoint": url}
    if auth is not None:
        configuration["webhook_authorization"] = {
            k: box.encrypt(v) if k in secret_fields else v for k, v in auth.items()
        }
    stream_id = new_stream_id()
    value = {
        "id": stream_id,
        "name": "stored long ago",
        "subscriptions": [{"event_type": "*"}],
        "destination": {"type": "webhook", "configuration": configuration},
        "status": "enabled",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    return stream_id, json.dumps(value).encode()


def write_raw_registry(settings: Settings, records: list[tuple[str, bytes]]) -> None:
    """Write registry records as given, straight to the topic (no model in between)."""
    from confluent_kafka import Producer

    producer = Producer(settings.kafka_config())
    for key, value in records:
        producer.produce(settings.streams_topic, value, key.encode())
    assert producer.flush(30) == 0
