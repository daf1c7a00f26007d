"""The dispatcher connects only where the outbound guard looked, even for a stream stored
before endpoint URLs were normalised (written straight into the registry topic)."""

from __future__ import annotations

import pytest

from dispatch_kit import (
    headers_of,
    old_record,
    produce_events,
    register,
    running_dispatcher,
    write_raw_registry,
)
from kafka_testkit import aread_topic
from moto_server import AWS_ENV, eventbridge_stream
from producer.config import Settings
from receiver import Receiver
from schemas import constants


async def test_a_stored_url_naming_two_hosts_is_refused_not_called(
    settings: Settings, receiver: Receiver
) -> None:
    """``http://127.0.0.1:P\\@8.8.8.8/``: Python's urlsplit (the guard before) reads host
    8.8.8.8, the HTTP client reads 127.0.0.1. With only 8.8.8.8 allowlisted, the old guard
    passed it and the client called the loopback receiver; now it is refused (dead-lettered
    with the reason) and the receiver is never called. Likewise an IPv4-mapped loopback."""
    strict = settings.model_copy(update={"destination_allowlist": ["8.8.8.8"]})
    records = [
        old_record(strict, f"http://127.0.0.1:{receiver.port}\\@8.8.8.8/hook"),
        old_record(strict, f"https://[::ffff:127.0.0.1]:{receiver.port}/hook"),
    ]
    write_raw_registry(strict, records)
    async with running_dispatcher(strict):
        produce_events(strict, 2)
        dead = await aread_topic(strict, strict.dlq_topic, 4, timeout=20)
    reasons = {headers_of(m)[constants.HEADER_DLQ_REASON] for m in dead}
    assert all(r.startswith("permanent failure: destination refused") for r in reasons), reasons
    assert any("backslashes" in r for r in reasons), reasons
    assert any("non-public" in r for r in reasons), reasons
    assert receiver.requests == []


async def test_an_eventbridge_endpoint_url_is_under_the_outbound_policy(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an allowlist entry: a plain-http loopback ``endpoint_url`` is refused by its
    text, and an https name that resolves to loopback is refused when the AWS client
    connects; both are dead-lettered saying why, and neither reaches the listener."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    strict = settings.model_copy(update={"destination_allowlist": []})
    literal, by_name = register(
        strict,
        eventbridge_stream("bus", endpoint_url=f"http://127.0.0.1:{receiver.port}"),
        eventbridge_stream("bus", endpoint_url=f"https://localhost:{receiver.port}"),
    )
    async with running_dispatcher(strict):
        produce_events(strict, 1)
        dead = await aread_topic(strict, strict.dlq_topic, 2, timeout=20)
    reasons = {
        headers_of(m)[constants.HEADER_STREAM_ID]: headers_of(m)[constants.HEADER_DLQ_REASON]
        for m in dead
    }
    assert "destination refused: http:// is not allowed" in reasons[literal.id], reasons
    assert "destination refused: localhost resolves to 127.0.0.1" in reasons[by_name.id]
    assert receiver.requests == []
