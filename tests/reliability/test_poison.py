"""Poison records on the lifecycle topic and on a retry tier: each is dead-lettered with its
reason, and the good events around them keep flowing."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from dispatch_kit import headers_of, produce_events, register, running_dispatcher, webhook_stream
from producer.config import Settings
from producer.producer import EventProducer, codec_for
from receiver import Received
from reliability.accounting import read_to_end, settle
from reliability.restartable_receiver import RestartableReceiver
from schemas import constants
from schemas.samples import sample_event

GOOD_EVENTS = 5_000


@dataclass
class Poison:
    """One bad record, where it goes, and the start of the dead-letter reason it must get."""

    name: str
    topic: str
    value: bytes | None
    reason: str
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    #: (partition, offset) once the broker acknowledged it.
    position: tuple[int, int] | None = None

    def acknowledged(self, err: KafkaError | None, message: Message) -> None:
        """Delivery report: remember where the record landed."""
        assert err is None, err
        self.position = (message.partition(), message.offset())


def poison_records(settings: Settings, stream_id: str, rng: random.Random) -> list[Poison]:
    """Garbage, tombstones, unknown fingerprints and truncated Avro on the lifecycle topic
    (no headers, as a broken producer would write them); the same bodies plus unreadable
    headers on the first retry tier (with the stream's id, as the dispatcher writes them)."""
    good = codec_for(settings).encode(sample_event("user.created", seed=1))
    body = good[len(constants.SINGLE_OBJECT_MAGIC) + 8 :]
    bad_values: dict[str, tuple[bytes | None, str]] = {
        "garbage": (b"GARBAGE" + rng.randbytes(40), "poison record: unknown magic bytes"),
        "tombstone": (None, "poison record: unknown magic bytes"),
        "unknown-fingerprint": (
            constants.SINGLE_OBJECT_MAGIC + rng.randbytes(8) + body,
            "poison record: no packaged schema has fingerprint",
        ),
        "truncated": (good[: len(good) // 2], "poison record: undecodable"),
    }
    lifecycle = [
        Poison(f"lifecycle-{kind}-{i}", settings.lifecycle_topic, value, reason)
        for i in range(8)
        for kind, (value, reason) in bad_values.items()
    ]
    tier = settings.retry_topic(settings.retry_schedule[0])
    now_ms = str(int(time.time() * 1000)).encode()

    def retry_headers(name: str, stream: str, attempt: bytes = b"1") -> list[tuple[str, bytes]]:
        return [
            (constants.HEADER_STREAM_ID, stream.encode()),
            (constants.HEADER_EVENT_ID, name.encode()),
            (constants.HEADER_ATTEMPT, attempt),
            (constants.HEADER_DUE_AT, now_ms),
        ]

    retry = [
        Poison(
            f"tier-{kind}-{i}", tier, value, reason, retry_headers(f"tier-{kind}-{i}", stream_id)
        )
        for i in range(4)
        for kind, (value, reason) in bad_values.items()
    ]
    for i in range(4):
        retry.append(
            Poison(
                f"tier-bad-attempt-{i}",
                tier,
                good,
                # The tolerant header reader takes the unreadable attempt as 0; the id header
                # (the record's name) contradicts the event's own id, which makes it poison.
                "poison record: id header",
                retry_headers(f"tier-bad-attempt-{i}", stream_id, attempt=b"one"),
            )
        )
        retry.append(
            Poison(
                f"tier-bad-stream-{i}",
                tier,
                good,
                "poison retry record: no valid stream id header",
                retry_headers(f"tier-bad-stream-{i}", "not-a-stream-id"),
            )
        )
    mixed = lifecycle + retry
    rng.shuffle(mixed)
    return mixed


def produce_with_poison(settings: Settings, count: int, poison: list[Poison]) -> list[str]:
    """Produce ``count`` good events with the poison records spread evenly between them;
    return the good events' ids."""
    ids: list[str] = []
    gap = count // (len(poison) + 1)
    pending = list(poison)
    raw = Producer(settings.kafka_config(**{"acks": "all"}))
    with EventProducer(settings) as producer:
        for i in range(count):
            event_type = constants.EVENT_TYPES[i % len(constants.EVENT_TYPES)]
            ids.append(producer.emit(sample_event(event_type, tenant=settings.tenant, seed=i)))
            if (i + 1) % gap == 0 and pending:
                # Flush both sides so the bad record really lands between good ones.
                assert producer.flush(30) == 0
                item = pending.pop(0)
                raw.produce(
                    item.topic,
                    item.value,
                    item.name.encode(),
                    headers=item.headers,
                    on_delivery=item.acknowledged,
                )
                assert raw.flush(30) == 0
    assert not pending
    return ids


def delivery_rate(receiver: RestartableReceiver, ids: list[str]) -> float:
    """Good events per second between the first and the last first-delivery of ``ids``."""
    first: dict[str, Received] = {}
    wanted = set(ids)
    for received in receiver.delivered():
        if received.event_id in wanted:
            first.setdefault(received.event_id, received)
    times = [r.at for r in first.values()]
    return len(first) / max(max(times) - min(times), 1e-6)


def dead_letter_of(poison: Poison, letters: list[dict[str, str]]) -> dict[str, str] | None:
    """The dead letter of one poison record: found by its place in the lifecycle topic, or by
    the event id header it carried on the tier."""
    for headers in letters:
        if poison.topic == headers.get(constants.HEADER_ORIGINAL_TOPIC) and poison.position == (
            int(headers[constants.HEADER_ORIGINAL_PARTITION]),
            int(headers[constants.HEADER_ORIGINAL_OFFSET]),
        ):
            return headers
        if poison.headers and headers.get(constants.HEADER_EVENT_ID) == poison.name:
            return headers
    return None


async def dead_letters_of(
    settings: Settings, poison: list[Poison], timeout: float
) -> dict[str, dict[str, str] | None]:
    """Each poison record's dead letter (headers), waiting up to ``timeout`` for all."""
    deadline = time.monotonic() + timeout
    while True:
        records = await asyncio.to_thread(read_to_end, settings, settings.dlq_topic)
        letters = [headers_of(m) for m in records]
        found = {p.name: dead_letter_of(p, letters) for p in poison}
        if all(found.values()) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_poison_is_dead_lettered_with_its_reason_and_good_events_keep_flowing(
    settings: Settings, receiver: RestartableReceiver
) -> None:
    """5,000 good events alone, then 5,000 with 32 poison lifecycle records and 24 poison
    retry-tier records interleaved: every poison record lies in the dead-letter topic with
    the reason for its kind, and every good event is delivered, none dead-lettered."""
    seed = random.SystemRandom().randrange(2**32)
    print(f"\nseed={seed}")
    (stream,) = register(settings, webhook_stream(receiver.url()))
    poison = poison_records(settings, stream.id, random.Random(seed))
    # Each batch is produced before a dispatcher starts, so both rates measure the dispatcher
    # working through a backlog, not how fast the test produces.
    clean_ids = await asyncio.to_thread(produce_events, settings, GOOD_EVENTS)
    async with running_dispatcher(settings):
        await settle(receiver, settings, stream.id, clean_ids, timeout=60)
    mixed_ids = await asyncio.to_thread(produce_with_poison, settings, GOOD_EVENTS, poison)
    async with running_dispatcher(settings):
        account = await settle(receiver, settings, stream.id, clean_ids + mixed_ids, timeout=60)
        found = await dead_letters_of(settings, poison, timeout=30)
    print(
        f"good events/s: without poison {delivery_rate(receiver, clean_ids):.0f}, "
        f"with poison {delivery_rate(receiver, mixed_ids):.0f}"
    )
    print(f"poison: produced={len(poison)} dead_lettered={sum(1 for f in found.values() if f)}")
    print(f"good events around poison: {account.line()}")
    account.assert_nothing_lost()
    assert not account.dead_lettered, "good events are never dead-lettered"
    for item in poison:
        letter = found[item.name]
        assert letter is not None, f"{item.name} was not dead-lettered"
        assert letter[constants.HEADER_DLQ_REASON].startswith(item.reason), (
            item.name,
            letter[constants.HEADER_DLQ_REASON],
        )
