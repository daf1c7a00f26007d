"""A stream stored before header values were checked (written straight into the registry
topic, as an older Tidings would have) cannot wedge the dispatcher: each of its events is
dead-lettered with a reason naming the field, and its neighbours deliver as usual."""

from __future__ import annotations

from typing import Any

from dispatch_kit import (
    headers_of,
    old_record,
    produce_events,
    register,
    running_dispatcher,
    webhook_stream,
    write_raw_registry,
)
from kafka_testkit import aread_topic
from producer.config import Settings
from receiver import Receiver
from schemas import constants

TOKEN = "old-token-Hq27\r\nX-Injected: 1"
HEADER_VALUE = "old-value-Vb63\n"


async def test_an_unsendable_stored_stream_dead_letters_with_the_field(
    settings: Settings, receiver: Receiver, capsys: Any
) -> None:
    """Bearer token with CR LF, custom header name with LF and value with LF: every event of
    those streams is dead-lettered naming the field (never the value), none reaches the
    receiver, and a good stream beside them gets every event."""
    old = [
        old_record(settings, receiver.url("bearer"), {"method": "bearer", "token": TOKEN}),
        old_record(
            settings,
            receiver.url("name"),
            {"method": "custom_header", "header_key": "X-Key\n", "header_value": "v"},
        ),
        old_record(
            settings,
            receiver.url("value"),
            {"method": "custom_header", "header_key": "X-Key", "header_value": HEADER_VALUE},
        ),
    ]
    write_raw_registry(settings, old)
    register(settings, webhook_stream(receiver.url("good")))
    async with running_dispatcher(settings) as dispatcher:
        ids = produce_events(settings, 3)
        dead = await aread_topic(settings, settings.dlq_topic, 3 * len(old), timeout=30)
        await receiver.wait_until(lambda: receiver.delivered_ids("good") == set(ids))
        assert not dispatcher.failed.is_set()
    reasons: dict[str, set[str]] = {}
    for message in dead:
        headers = headers_of(message)
        reasons.setdefault(headers[constants.HEADER_STREAM_ID], set()).add(
            headers[constants.HEADER_DLQ_REASON]
        )
    fields = ("token", "header_key", "header_value")
    for (stream_id, _value), field in zip(old, fields, strict=True):
        (reason,) = reasons[stream_id]
        assert f"webhook_authorization.{field} " in reason, reason
        assert "line break" in reason, reason
    assert {r.path for r in receiver.requests} == {"good"}
    logged = capsys.readouterr()
    for secret in ("old-token-Hq27", "old-value-Vb63"):
        assert secret not in logged.out + logged.err
        assert all(secret not in r for rs in reasons.values() for r in rs)
