"""``tidings dlq list|replay|purge`` against the real broker.

Dead letters come from the real dispatcher (an endpoint answering 400 dead-letters at once)
where the whole path matters, and are otherwise written the way the dispatcher writes them
(``Job.headers`` with a reason), which lets a test choose their times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from admin.dlq import register_cli
from dispatch_kit import headers_of, produce_events, register, running_dispatcher, webhook_stream
from dispatcher.jobs import Job
from kafka_testkit import aread_topic, read_topic, topic_size
from producer.config import Settings
from receiver import Receiver
from schemas import constants
from schemas.ids import new_event_id, new_stream_id

NOW = datetime.now(UTC)


def dlq(settings: Settings, *argv: str) -> int:
    """Run ``tidings dlq <argv>`` through the module's own parser wiring."""
    parser = argparse.ArgumentParser(prog="tidings")
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["dlq", *argv])
    code: int = args.handler(args, settings)
    return code


async def adlq(settings: Settings, *argv: str) -> int:
    """:func:`dlq` on a thread, so an in-process dispatcher keeps running meanwhile."""
    return await asyncio.to_thread(dlq, settings, *argv)


def write_dead_letters(settings: Settings, letters: list[tuple[str, str, datetime]]) -> list[str]:
    """Write ``(stream id, event type, dead-letter time)`` dead letters; return event ids."""
    producer = Producer(settings.kafka_config())
    ids = []
    for stream_id, event_type, at in letters:
        event_id = new_event_id()
        job = Job(
            stream_id=stream_id,
            event_id=event_id,
            event_type=event_type,
            value=b"avro " + event_id.encode(),
            key=event_id.encode(),
            origin_topic=settings.lifecycle_topic,
            origin_partition=1,
            origin_offset=len(ids),
        ).failed("HTTP 400", 400, at)
        headers = job.headers(at, reason="permanent failure: HTTP 400")
        producer.produce(settings.dlq_topic, job.value, job.key, headers=headers)
        ids.append(event_id)
    assert producer.flush(30) == 0
    return ids


def listed(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """Event ids ``dlq list --json <argv>`` prints, in order."""
    capsys.readouterr()
    assert dlq(settings, "list", "--json", *argv) == 0
    return [json.loads(line)["event_id"] for line in capsys.readouterr().out.splitlines()]


STREAM_A, STREAM_B = new_stream_id(), new_stream_id()


@pytest.fixture
def letters(settings: Settings) -> list[str]:
    """Five dead letters: two streams, several types, times from 3 h ago to now."""
    return write_dead_letters(
        settings,
        [
            (STREAM_A, "user.created", NOW - timedelta(hours=3)),
            (STREAM_A, "user.deleted", NOW - timedelta(minutes=90)),
            (STREAM_A, "organization.created", NOW - timedelta(minutes=45)),
            (STREAM_B, "user.created", NOW - timedelta(minutes=20)),
            (STREAM_B, "organization.member.added", NOW),
        ],
    )


def test_list_prints_a_table_and_json_lines(
    settings: Settings, letters: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has one row per dead letter with its stream, type, attempts, status and
    reason; ``--json`` prints one object per line with the headers and coordinates."""
    assert dlq(settings, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "TIME",
        "STREAM",
        "EVENT",
        "ID",
        "TYPE",
        "ATTEMPTS",
        "LAST",
        "STATUS",
        "REASON",
    ]
    assert lines[-1] == "(5 dead letters)"
    rows = {line.split()[2]: line.split() for line in lines[1:-1]}
    assert [line.split()[2] for line in lines[1:-1]] == letters, "oldest first"
    first = rows[letters[0]]
    assert first[1] == STREAM_A
    assert first[3:6] == ["user.created", "1", "400"]
    assert " ".join(first[6:]) == "permanent failure: HTTP 400"

    assert dlq(settings, "list", "--json") == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(d["event_id"] for d in docs) == sorted(letters)
    doc = next(d for d in docs if d["event_id"] == letters[1])
    assert doc["stream_id"] == STREAM_A
    assert doc["event_type"] == "user.deleted"
    assert doc["attempts"] == 1
    assert doc["last_http_status"] == 400
    assert doc["reason"] == "permanent failure: HTTP 400"
    assert doc["original_topic"] == settings.lifecycle_topic
    assert doc["partition"] in (0, 1)
    assert doc["offset"] >= 0
    assert doc["headers"][constants.HEADER_EVENT_ID] == letters[1]


def test_filters_select_exactly_what_they_name(
    settings: Settings, letters: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Stream, event ids, types (wildcards too) and time windows (relative and ISO) each keep
    only their dead letters; combined, all must hold."""
    a1, a2, a3, b1, b2 = letters

    def ids(*argv: str) -> set[str]:
        return set(listed(settings, capsys, *argv))

    assert ids() == set(letters)
    assert ids("--stream", STREAM_A) == {a1, a2, a3}
    assert ids("--stream", new_stream_id()) == set()
    assert ids("--event-id", a2, "--event-id", b2) == {a2, b2}
    assert ids("--type", "user.created") == {a1, b1}
    assert ids("--type", "user.*") == {a1, a2, b1}
    assert ids("--type", "organization.*", "--type", "user.deleted") == {a2, a3, b2}
    assert ids("--from=-2h") == {a2, a3, b1, b2}
    assert ids("--from=-2h", "--to=-30m") == {a2, a3}
    assert ids("--to", (NOW - timedelta(hours=1)).isoformat()) == {a1, a2}
    assert ids("--stream", STREAM_A, "--type", "user.*", "--from=-2h") == {a2}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "--from", "yesterday"], "error: --from: 'yesterday' is not a time"),
        (["replay", "--stream", "stream-1"], "error: --stream: 'stream-1' is not a stream id"),
        (["purge", "--yes", "--to=-2q"], "error: --to: '-2q' is not a time"),
        (["list", "--event-id", "42"], "error: --event-id: '42' is not an event id"),
    ],
)
def test_bad_options_print_one_line_and_exit_1(
    settings: Settings,
    letters: list[str],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    """A bad time or id is one clear line on stderr, exit status 1, and nothing is done."""
    assert dlq(settings, *argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1
    assert len(listed(settings, capsys)) == 5


def test_a_missing_topic_is_one_error_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a cluster without Tidings' topics, the command says which topic is missing
    and how to create it."""
    elsewhere = settings.model_copy(update={"topic_prefix": "never-created."})
    assert dlq(elsewhere, "list") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: topic never-created.dlq: ")
    assert err.rstrip().endswith("(run `tidings topics ensure`)")
    assert err.count("\n") == 1


def test_replay_enqueues_fresh_jobs_into_the_first_tier(
    settings: Settings, letters: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each matching dead letter becomes a first-tier record due now with attempt 0, keeping
    stream, event, type, origin, key and bytes; the dead letters themselves stay."""
    before = datetime.now(UTC)
    assert dlq(settings, "replay", "--type", "user.*") == 0
    tier = settings.retry_topic(settings.retry_schedule[0])
    assert capsys.readouterr().out.strip() == f"Replayed 3 dead letters to {tier}."
    records = read_topic(settings, tier, 3)
    assert topic_size(settings, tier) == 3
    assert topic_size(settings, settings.retry_topic(settings.retry_schedule[1])) == 0
    by_id = {headers_of(r)[constants.HEADER_EVENT_ID]: r for r in records}
    assert set(by_id) == {letters[0], letters[1], letters[3]}
    record = by_id[letters[1]]
    headers = headers_of(record)
    assert headers[constants.HEADER_STREAM_ID] == STREAM_A
    assert headers[constants.HEADER_EVENT_TYPE] == "user.deleted"
    assert headers[constants.HEADER_ATTEMPT] == "0"
    assert headers[constants.HEADER_ORIGINAL_TOPIC] == settings.lifecycle_topic
    assert headers[constants.HEADER_ORIGINAL_OFFSET] == "1"
    assert constants.HEADER_LAST_HTTP_STATUS not in headers
    assert constants.HEADER_DLQ_REASON not in headers
    due = int(headers[constants.HEADER_DUE_AT]) / 1000
    assert before.timestamp() - 0.01 <= due <= datetime.now(UTC).timestamp()
    assert record.key() == letters[1].encode()
    assert record.value() == b"avro " + letters[1].encode()
    assert len(listed(settings, capsys)) == 5, "replay does not remove dead letters"


def test_replay_twice_enqueues_twice_unless_once(
    settings: Settings, letters: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Replay is at-least-once and explicit: a second run enqueues again. ``--once`` marks the
    replayed dead letters purged, so a later replay (or list) no longer finds them."""
    tier = settings.retry_topic(settings.retry_schedule[0])
    a1 = letters[0]
    assert dlq(settings, "replay", "--event-id", a1) == 0
    assert dlq(settings, "replay", "--event-id", a1) == 0
    assert topic_size(settings, tier) == 2
    assert dlq(settings, "replay", "--once", "--event-id", a1) == 0
    assert topic_size(settings, tier) == 3
    capsys.readouterr()
    assert dlq(settings, "replay", "--event-id", a1) == 0
    assert capsys.readouterr().out.strip() == "No dead letters match; nothing replayed."
    assert topic_size(settings, tier) == 3
    assert a1 not in listed(settings, capsys)
    assert len(listed(settings, capsys)) == 4


def test_purge_with_filters_writes_markers_that_list_and_replay_honour(
    settings: Settings, letters: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Kafka cannot delete single records: a filtered purge writes one marker per purged dead
    letter, and list and replay skip both the markers and the records they name."""
    a3, b2 = letters[2], letters[4]
    capsys.readouterr()
    assert dlq(settings, "purge", "--yes", "--type", "user.*") == 0
    out = capsys.readouterr().out
    assert out.strip() == f"Purged 3 dead letters: purge markers written to {settings.dlq_topic}."
    assert set(listed(settings, capsys)) == {a3, b2}
    assert topic_size(settings, settings.dlq_topic) == 5 + 3, "records stay, markers added"
    markers = [
        m
        for m in read_topic(settings, settings.dlq_topic, 8)
        if constants.HEADER_PURGED in headers_of(m)
    ]
    assert len(markers) == 3
    assert all(m.value() is None for m in markers)

    capsys.readouterr()
    assert dlq(settings, "replay") == 0
    assert capsys.readouterr().out.startswith("Replayed 2 dead letters")
    tier = read_topic(settings, settings.retry_topic(settings.retry_schedule[0]), 2)
    assert {headers_of(r)[constants.HEADER_EVENT_ID] for r in tier} == {a3, b2}

    assert dlq(settings, "purge", "--yes", "--stream", STREAM_B) == 0
    assert listed(settings, capsys) == [a3]


def test_purge_without_filters_deletes_the_records(
    settings: Settings, letters: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unfiltered purge deletes every partition up to its end (low watermark = high), and
    later dead letters are listed as usual."""
    write_dead_letters(settings, [(STREAM_A, "user.created", NOW)])
    assert dlq(settings, "purge", "--yes", "--event-id", letters[0]) == 0  # leaves a marker
    capsys.readouterr()
    assert dlq(settings, "purge", "--yes") == 0
    assert capsys.readouterr().out.strip() == (
        f"Purged 5 dead letters: records deleted from {settings.dlq_topic}."
    )
    assert listed(settings, capsys) == []
    # 7 records were written (6 dead letters, 1 marker): none is left between low and high.
    assert topic_size(settings, settings.dlq_topic) == 0, "deleted, the marker included"

    (later,) = write_dead_letters(settings, [(STREAM_B, "user.deleted", NOW)])
    assert listed(settings, capsys) == [later]
    capsys.readouterr()
    assert dlq(settings, "purge", "--yes") == 0
    assert capsys.readouterr().out.startswith("Purged 1 dead letter:")


def test_purge_asks_first_and_no_purges_nothing(
    settings: Settings,
    letters: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --yes the terminal is asked; anything but y/yes (or end of input) purges
    nothing and exits 1; 'y' purges."""
    prompts: list[str] = []
    answers = iter(["n", "", "YES"])

    def answer(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("builtins.input", answer)
    assert dlq(settings, "purge", "--stream", STREAM_B) == 1
    assert prompts == ["Purge 2 dead letters? [y/N] "]
    assert "Aborted; nothing purged." in capsys.readouterr().err
    assert dlq(settings, "purge") == 1
    assert prompts[-1] == "Purge 5 dead letters? [y/N] "
    assert len(listed(settings, capsys)) == 5
    assert dlq(settings, "purge", "--stream", STREAM_B) == 0
    assert len(listed(settings, capsys)) == 3

    def end_of_input(_prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", end_of_input)
    assert dlq(settings, "purge") == 1
    assert len(listed(settings, capsys)) == 3


def test_purge_of_nothing_asks_nothing(
    settings: Settings, letters: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When no dead letter matches there is nothing to confirm and nothing is written."""

    def never(_prompt: str) -> str:
        raise AssertionError("asked")

    monkeypatch.setattr("builtins.input", never)
    assert dlq(settings, "purge", "--stream", new_stream_id()) == 0
    assert topic_size(settings, settings.dlq_topic) == 5


async def test_replay_after_the_endpoint_recovers_delivers_through_the_dispatcher(
    settings: Settings, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events dead-lettered by a 400 are delivered once the endpoint answers 200 again and
    ``dlq replay --stream X`` runs; another stream's dead letters are not replayed."""
    receiver.script = lambda _r, _n: 400
    x, y = register(
        settings,
        webhook_stream(receiver.url("x"), name="x"),
        webhook_stream(receiver.url("y"), name="y"),
    )
    async with running_dispatcher(settings):
        ids = produce_events(settings, 3)
        await aread_topic(settings, settings.dlq_topic, 6, timeout=30)
        assert len(receiver.requests) == 6
        receiver.script = lambda _r, _n: 200
        assert await adlq(settings, "replay", "--stream", x.id) == 0
        # (the in-process dispatcher logs to stdout as well)
        out = capsys.readouterr().out.splitlines()
        assert any(line.startswith("Replayed 3 dead letters to ") for line in out)
        await receiver.wait_until(lambda: receiver.delivered_ids("x") == set(ids), timeout=30)
        await asyncio.sleep(1.0)  # time for a wrong replay of y to show up
    assert receiver.delivered("y") == []
    assert len(receiver.delivered("x")) == 3, "each replayed event delivered once"
    capsys.readouterr()
    assert await adlq(settings, "list", "--json", "--stream", y.id) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith('{"partition"')]) == 3
