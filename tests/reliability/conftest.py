"""Fixtures of the reliability tests: a receiver that can go down and come back on the same
port, and a Kafka broker of a test's own for the tests that stop it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from admin.broker import LocalBroker
from kafka_testkit import running_broker
from reliability.restartable_receiver import RestartableReceiver


@pytest.fixture(autouse=True)
def quiet_dispatcher_logs() -> Iterator[None]:
    """In-process dispatchers log every retry at INFO: thousands of lines per test that bury
    the account lines and cost the event loop time. Warnings and errors still show."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.configure(**previous)


@pytest.fixture
async def receiver() -> AsyncIterator[RestartableReceiver]:
    """A fresh receiver per test, answering 200 until its script is changed."""
    receiver = RestartableReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def dedicated_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of the test's own (free ports, fresh data directory), for tests that stop
    and restart it; the session broker other tests share is never touched."""
    yield from running_broker(tmp_path_factory.mktemp("dedicated-kafka"))
