"""Shared fixtures: one real Kafka broker per test session, fresh topics per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from admin.broker import LocalBroker
from admin.topics import ensure_all
from kafka_testkit import fresh_settings, running_broker
from postgres_kit import PostgresServer, running_postgres
from producer.config import Settings
from receiver import Receiver


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The session's real broker, shared by every test (each uses its own topics)."""
    yield from running_broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture(scope="session")
def kafka_admin(kafka_broker: LocalBroker) -> AdminClient:
    """An admin client for the session broker."""
    return AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL server (started on first use, shared by the tests that
    need one; each takes a database of its own from ``pg_dsn``)."""
    yield from running_postgres()


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()


@pytest.fixture
def settings(
    kafka_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings pointing at the session broker, with a topic prefix no other test uses and
    every topic created."""
    settings = fresh_settings(
        monkeypatch,
        kafka_broker.bootstrap_servers,
        history_path=str(tmp_path / "history.sqlite3"),
    )
    ensure_all(settings)
    return settings


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1, fresh per test (answers scripted per request)."""
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()
