"""Helpers for history store tests: delivery-log records in the dispatcher's own format,
produced to the session broker, and an admin service run as a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer

from admin.broker import free_port
from dispatcher.delivery_log import attempt_record
from producer.config import Settings

TOKEN = "history-token-for-tests-0123456789"


def produce_attempts(
    settings: Settings,
    stream_id: str,
    count: int,
    *,
    first: int = 0,
    per_record: int = 50,
    at: datetime | None = None,
) -> list[str]:
    """Write ``count`` successful first attempts of events ``evt_<first + i>`` as the
    dispatcher writes them (``per_record`` attempts per record); their event ids."""
    producer = Producer(settings.kafka_config())
    when = at or datetime.now(UTC)
    ids = [f"evt_{first + i:022d}" for i in range(count)]
    lines = [
        attempt_record(
            stream_id=stream_id,
            event_id=event_id,
            event_type="user.created",
            attempt=1,
            status="success",
            http_status=200,
            error=None,
            duration_ms=3.5,
            at=when + timedelta(microseconds=i),
            next_attempt_at=None,
            event_time=when,
            purpose=None,
            origin_topic=settings.lifecycle_topic,
            origin_partition=0,
            origin_offset=first + i,
        )
        for i, event_id in enumerate(ids)
    ]
    for start in range(0, count, per_record):
        value = b"\n".join(lines[start : start + per_record])
        producer.produce(settings.deliveries_topic, value, stream_id.encode())
        producer.poll(0)
    assert producer.flush(30) == 0
    return ids


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that runs ``tidings admin serve`` on the settings' topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        TIDINGS_TOPIC_PREFIX=settings.topic_prefix,
        TIDINGS_INTERNAL_PARTITIONS=str(settings.internal_partitions),
        TIDINGS_LIFECYCLE_PARTITIONS=str(settings.lifecycle_partitions),
        TIDINGS_HISTORY_PATH=settings.history_path,
        TIDINGS_ADMIN_TOKEN=TOKEN,
        TIDINGS_LOG_LEVEL="INFO",
    )
    if settings.secrets_key is not None:
        env["TIDINGS_SECRETS_KEY"] = settings.secrets_key.get_secret_value()
    env.update(extra)
    return env


def start_service(
    settings: Settings, log: Path, **extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    """``tidings admin serve`` on a free port, logging to ``log``; the process and port."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("tidings")), "admin", "serve", "--port", str(port)],
            env=service_env(settings, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, port
