"""``tidings status`` against the real broker: streams, lag, retry backlog, dead letters.

The pure backlog arithmetic is tested first, without Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from admin import dlq, status
from admin.status import backlog
from dispatch_kit import produce_events, register, running_dispatcher, webhook_stream
from kafka_testkit import aread_topic
from producer.config import Settings
from receiver import Receiver
from schemas import constants


def run(settings: Settings, module: Any, *argv: str) -> int:
    """Run one subcommand through ``module.register_cli``'s parser wiring."""
    parser = argparse.ArgumentParser(prog="tidings")
    module.register_cli(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    code: int = args.handler(args, settings)
    return code


def status_json(settings: Settings, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """``tidings status --json`` parsed (its document is the last line of stdout)."""
    capsys.readouterr()
    assert run(settings, status, "status", "--json") == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out.splitlines()[-1])
    return doc


def lag_of(doc: dict[str, Any]) -> dict[str, int]:
    """Stream name -> lag."""
    return {s["name"]: s["lag"] for s in doc["streams"]}


# pure --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("marks", "committed", "start", "expected"),
    [
        ({0: (0, 10), 1: (0, 5)}, {0: 4, 1: 5}, {}, 6),
        ({0: (0, 10)}, {}, {}, 10),
        ({0: (0, 10)}, {0: -1001}, {0: 7}, 3),
        ({0: (0, 10)}, {}, {0: 10}, 0),
        ({0: (6, 10)}, {0: 2}, {}, 4),
        ({0: (6, 10)}, {}, {0: 3}, 4),
        ({0: (0, 10)}, {0: 12}, {}, 0),
        ({}, {}, {}, 0),
    ],
    ids=[
        "committed",
        "never-committed-from-low",
        "never-committed-from-start",
        "start-at-end",
        "committed-below-retention",
        "start-below-retention",
        "committed-past-end",
        "no-partitions",
    ],
)
def test_backlog_counts_records_past_each_position(
    marks: dict[int, tuple[int, int]],
    committed: dict[int, int],
    start: dict[int, int],
    expected: int,
) -> None:
    """Per partition: high minus the committed offset, else the start offset, else low;
    never counting below the low watermark or past the high one."""
    assert backlog(marks, committed, start) == expected


# real broker -------------------------------------------------------------------------------
async def test_lag_is_what_no_dispatcher_has_delivered_yet(
    settings: Settings, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events produced while no dispatcher runs are the lag of a stream created before them
    (or reading from the earliest); a stream created after them starts past them; once the
    dispatcher delivered everything, the lag is 0."""
    (before,) = register(settings, webhook_stream(receiver.url("a"), name="before"))
    produce_events(settings, 7)
    await asyncio.sleep(0.05)  # created strictly after the events
    after, earliest = register(
        settings,
        webhook_stream(receiver.url("b"), name="after"),
        webhook_stream(receiver.url("c"), name="earliest", delivery={"start_position": "earliest"}),
    )
    doc = await asyncio.to_thread(status_json, settings, capsys)
    assert lag_of(doc) == {"before": 7, "after": 0, "earliest": 7}
    one = next(s for s in doc["streams"] if s["name"] == "before")
    assert one == {
        "id": before.id,
        "name": "before",
        "status": "enabled",
        "status_reason": None,
        "destination_type": "webhook",
        "destination": receiver.url("a"),
        "lag": 7,
        "dead_letters": 0,
    }

    async with running_dispatcher(settings):
        await receiver.wait_until(
            lambda: len(receiver.delivered("a")) == 7 and len(receiver.delivered("c")) == 7
        )
    doc = await asyncio.to_thread(status_json, settings, capsys)
    assert lag_of(doc) == {"before": 0, "after": 0, "earliest": 0}
    assert {after.id, earliest.id} <= {s["id"] for s in doc["streams"]}


async def test_retry_backlog_and_dead_letters_are_counted(
    settings: Settings, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dead letters count per stream and in total, minus purged ones; a tier's backlog is
    what its consumer group has not passed (replays waiting for a dispatcher here)."""
    receiver.script = lambda _r, _n: 400
    failing, fine = register(
        settings,
        webhook_stream(receiver.url("fail"), name="failing"),
        webhook_stream(receiver.url("ok"), name="fine", types=["organization.*"]),
    )
    async with running_dispatcher(settings):
        produce_events(settings, 3, types=("user.created",))
        dead = await aread_topic(settings, settings.dlq_topic, 3, timeout=30)
    event_ids = [dict(m.headers() or [])[constants.HEADER_EVENT_ID].decode() for m in dead]

    doc = await asyncio.to_thread(status_json, settings, capsys)
    assert doc["dead_letters"] == 3
    assert {s["name"]: s["dead_letters"] for s in doc["streams"]} == {"failing": 3, "fine": 0}
    assert [t["backlog"] for t in doc["retry_tiers"]] == [0, 0]
    assert lag_of(doc) == {"failing": 0, "fine": 0}

    assert (
        await asyncio.to_thread(run, settings, dlq, "dlq", "replay", "--event-id", event_ids[0])
        == 0
    )
    assert (
        await asyncio.to_thread(
            run, settings, dlq, "dlq", "purge", "--yes", "--event-id", event_ids[1]
        )
        == 0
    )
    second_tier = settings.retry_topic(settings.retry_schedule[1])
    producer = Producer(settings.kafka_config())
    for _ in range(2):
        producer.produce(second_tier, b"x", b"k")
    assert producer.flush(10) == 0

    doc = await asyncio.to_thread(status_json, settings, capsys)
    assert doc["dead_letters"] == 2
    assert {s["name"]: s["dead_letters"] for s in doc["streams"]} == {"failing": 2, "fine": 0}
    assert doc["retry_tiers"] == [
        {"delay": "1s", "topic": settings.retry_topic(settings.retry_schedule[0]), "backlog": 1},
        {"delay": "2s", "topic": second_tier, "backlog": 2},
    ]

    capsys.readouterr()
    assert await asyncio.to_thread(run, settings, status, "status") == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == ["STREAM", "NAME", "STATUS", "DESTINATION", "LAG", "DEAD", "LETTERS"]
    row = next(line.split() for line in lines if line.startswith(failing.id))
    assert row == [failing.id, "failing", "enabled", receiver.url("fail"), "0", "2"]
    assert any(line.split() == ["2s", second_tier, "2"] for line in lines)
    assert lines[-1] == "Dead letters: 2"
    assert fine.id in text


def test_status_without_streams_says_so(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh installation shows no streams, empty tiers and no dead letters."""
    started = time.monotonic()
    assert run(settings, status, "status") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "No streams."
    assert out[-1] == "Dead letters: 0"
    assert time.monotonic() - started < 15, "a status of nothing is quick"


def test_unreachable_kafka_is_one_error_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """When Kafka does not answer in --timeout, status prints one error line and exits 1."""
    from admin.broker import free_port

    away = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    assert run(away, status, "status", "--timeout", "2") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: Kafka at {away.bootstrap_servers}: ")
    assert err.count("\n") == 1
