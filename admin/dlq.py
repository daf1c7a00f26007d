"""``tidings dlq list|replay|purge``: the dead-letter topic, read straight from Kafka.

Every command reads the whole dead-letter topic, from each partition's low watermark to the
end offset seen when the command started (partitions assigned, no consumer group, nothing
committed), and keeps the dead letters that pass the filters: stream, event ids, event type
patterns (``user.*``) and a window on the time of the last failure
(``tidings-last-failure-at``, else the record's timestamp).

Purging. Kafka deletes records only as a prefix of a partition (``DeleteRecords``), so:

* ``purge`` without filters deletes every partition up to the end offsets it saw. Those
  records are really gone; dead letters that arrived meanwhile are kept.
* ``purge`` with filters cannot delete single records. It writes one *purge marker* per
  purged dead letter instead: a record with a null value and the header
  ``tidings-purged: <partition>:<offset>``, in the same partition as the dead letter it
  names. ``list``, ``replay``, ``purge`` and ``tidings status`` skip markers and the records
  they name. A marker carries no stream or event id header, so a reader that does not know
  markers finds nothing in it to show. As a marker always lies after the record it names in
  the same partition, retention and a later full purge remove the two together.

Replaying. ``replay`` enqueues each matching dead letter into the *first retry tier*,
addressed to its stream, as a fresh job (attempt 0, due now) that keeps the stream id, event
id, type, origin coordinates, purpose and the original key and bytes. The dispatcher's tier
consumer delivers it through the normal path, so a replay never holds back live traffic on
the lifecycle topic, and a replay that fails again climbs the tiers and may be dead-lettered
again, as a new record. Replay is explicit and at-least-once: running it twice enqueues
twice. ``--once`` also writes purge markers for the replayed dead letters once the enqueue
is acknowledged, so a second replay no longer finds them; a crash between the two steps can
still enqueue twice, never zero times.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from admin.timeparse import parse_time
from dispatcher.jobs import Job
from dispatcher.subscriptions import matches, validate_pattern
from producer.config import Settings
from schemas import constants
from schemas.ids import is_event_id, is_stream_id
from schemas.record_headers import RecordHeaders
from schemas.timestamps import format_rfc3339_millis

#: Seconds any one command may spend reading or writing Kafka before giving up.
DEFAULT_TIMEOUT = 30.0

CliHandler = Callable[[argparse.Namespace, Settings], int]


class DlqError(Exception):
    """A user-facing failure: printed as one line on stderr, exit status 1."""


def reports_errors(handler: CliHandler) -> CliHandler:
    """Turn a user error or a Kafka failure into one ``error:`` line and exit status 1."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except (DlqError, ValueError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            text = error.str() if isinstance(error, KafkaError) else str(exc)
            print(f"error: Kafka at {settings.bootstrap_servers}: {text}", file=sys.stderr)
            return 1

    return wrapper


# dead letters and purge markers ------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return format_rfc3339_millis(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic with its headers decoded."""

    message: Message
    headers: RecordHeaders

    @classmethod
    def of(cls, message: Message) -> DeadLetter:
        """Wrap a consumed record."""
        return cls(message, RecordHeaders.of(message))

    @property
    def partition(self) -> int:
        """The record's partition."""
        return self.message.partition() or 0

    @property
    def offset(self) -> int:
        """The record's offset."""
        return self.message.offset() or 0

    def _text(self, name: str) -> str:
        return self.headers.text(name)

    @property
    def stream_id(self) -> str:
        """The stream the event was dead-lettered for."""
        return self._text(constants.HEADER_STREAM_ID)

    @property
    def event_id(self) -> str:
        """The event's id."""
        return self._text(constants.HEADER_EVENT_ID)

    @property
    def event_type(self) -> str:
        """The event's type."""
        return self._text(constants.HEADER_EVENT_TYPE)

    @property
    def reason(self) -> str:
        """Why the dispatcher gave up."""
        return self._text(constants.HEADER_DLQ_REASON)

    @property
    def failed_at(self) -> datetime:
        """When it was dead-lettered: the last failure, else the record's timestamp."""
        at = self.headers.time_ms(constants.HEADER_LAST_FAILURE_AT)
        if at is not None:
            return at
        _kind, stamp = self.message.timestamp()
        return datetime.fromtimestamp(max(stamp, 0) / 1000, UTC)

    def job(self) -> Job:
        """The job as it was dead-lettered."""
        return Job.from_retry(self.message, self.headers)

    def fresh_job(self) -> Job:
        """The job to replay: same event, stream, origin and purpose; no attempts yet."""
        return self.job().fresh()

    def to_json(self) -> dict[str, Any]:
        """Every header (named fields and raw), the coordinates and the times, for ``--json``."""
        job = self.job()
        _kind, stamp = self.message.timestamp()
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": _iso(datetime.fromtimestamp(max(stamp, 0) / 1000, UTC)),
            "failed_at": _iso(self.failed_at),
            "stream_id": job.stream_id,
            "event_id": job.event_id,
            "event_type": job.event_type,
            "attempts": job.attempts,
            "first_failure_at": _iso(job.first_failure_at),
            "last_error": job.last_error,
            "last_http_status": job.last_http_status,
            "reason": self.reason or None,
            "purpose": job.purpose,
            "original_topic": job.origin_topic,
            "original_partition": job.origin_partition,
            "original_offset": job.origin_offset,
            "headers": {k: v.decode(errors="replace") for k, v in self.headers.raw.items()},
        }


def marker_headers(partition: int, offset: int, reason: str) -> list[tuple[str, bytes]]:
    """Headers of the purge marker for the dead letter at ``partition:offset``."""
    return [
        (constants.HEADER_PURGED, f"{partition}:{offset}".encode()),
        (constants.HEADER_PURGE_REASON, reason.encode()),
    ]


def marked_record(headers: RecordHeaders) -> tuple[int, int] | None:
    """The ``(partition, offset)`` a purge marker names; None for a malformed value."""
    partition, _sep, offset = headers.text(constants.HEADER_PURGED).partition(":")
    try:
        return int(partition), int(offset)
    except ValueError:
        return None


def live_letters(messages: Iterable[Message]) -> tuple[list[DeadLetter], int]:
    """The dead letters no purge marker names, in (partition, offset) order, and how many
    markers there were."""
    letters: list[DeadLetter] = []
    purged: set[tuple[int, int]] = set()
    markers = 0
    for message in messages:
        letter = DeadLetter.of(message)
        if constants.HEADER_PURGED in letter.headers:
            markers += 1
            where = marked_record(letter.headers)
            if where is not None:
                purged.add(where)
        else:
            letters.append(letter)
    kept = [x for x in letters if (x.partition, x.offset) not in purged]
    return sorted(kept, key=lambda x: (x.partition, x.offset)), markers


# filters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DlqFilter:
    """Which dead letters a command acts on; every given criterion must hold."""

    stream_id: str | None = None
    event_ids: frozenset[str] = frozenset()
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, now: datetime | None = None) -> DlqFilter:
        """Validate the filter options; a bad one raises ``DlqError`` naming the option."""
        if args.stream is not None and not is_stream_id(args.stream):
            raise DlqError(f"--stream: {args.stream!r} is not a stream id (est_ + 22 characters)")
        for event_id in args.event_id or ():
            if not is_event_id(event_id):
                raise DlqError(
                    f"--event-id: {event_id!r} is not an event id (evt_ + 22 characters)"
                )
        for pattern in args.type or ():
            try:
                validate_pattern(pattern)
            except ValueError as exc:
                raise DlqError(f"--type: {exc}") from None
        times: list[datetime | None] = []
        for option, value in (("--from", args.since), ("--to", args.until)):
            try:
                times.append(parse_time(value, now) if value is not None else None)
            except ValueError as exc:
                raise DlqError(f"{option}: {exc}") from None
        since, until = times
        if since is not None and until is not None and since > until:
            raise DlqError("--from is later than --to")
        return cls(args.stream, frozenset(args.event_id or ()), tuple(args.type or ()), *times)

    @property
    def is_empty(self) -> bool:
        """True when the filter selects every dead letter."""
        return self == DlqFilter()

    def __call__(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` is selected."""
        if self.stream_id is not None and letter.stream_id != self.stream_id:
            return False
        if self.event_ids and letter.event_id not in self.event_ids:
            return False
        if self.types and not matches(self.types, letter.event_type):
            return False
        at = letter.failed_at
        return (self.since is None or at >= self.since) and (self.until is None or at <= self.until)


# Kafka -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DlqContents:
    """The live dead letters up to the end offsets seen at the start of a read."""

    topic: str
    letters: list[DeadLetter]
    ends: dict[int, int]
    markers: int


def topic_partitions(client: Consumer | AdminClient, topic: str, timeout: float) -> list[int]:
    """The partition numbers of ``topic``; a missing topic is a user-facing error."""
    metadata = client.list_topics(topic, timeout=timeout).topics[topic]
    if metadata.error is not None:
        raise DlqError(f"topic {topic}: {metadata.error.str()} (run `tidings topics ensure`)")
    return sorted(metadata.partitions)


def read_dead_letters(settings: Settings, timeout: float = DEFAULT_TIMEOUT) -> DlqContents:
    """Read the dead-letter topic from the beginning to the end offsets seen now."""
    topic = settings.dlq_topic
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"{settings.topic_prefix}dlq-cli-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
    )
    try:
        ends: dict[int, int] = {}
        pending: dict[int, int] = {}
        for partition in topic_partitions(consumer, topic, timeout):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            ends[partition] = high
            if high > low:
                pending[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout:g}s")
            for message in consumer.consume(500, 0.2):
                partition = message.partition() or 0
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    pending.pop(partition, None)
                    continue
                end = pending.get(partition)
                if end is None or (message.offset() or 0) >= end:
                    continue  # written after the start: not part of this read
                messages.append(message)
                if (message.offset() or 0) + 1 >= end:
                    pending.pop(partition)
    finally:
        consumer.close()
    letters, markers = live_letters(messages)
    return DlqContents(topic, letters, ends, markers)


#: A record to produce: topic, partition (-1: the key's partition), key, value, headers.
_Record = tuple[str, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


def _produce_all(settings: Settings, records: Sequence[_Record], timeout: float) -> None:
    """Produce ``records`` and wait for every acknowledgement."""
    producer = Producer(
        settings.kafka_config(**{"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    )
    errors: list[str] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err.str())

    for topic, partition, key, value, headers in records:
        sent: list[tuple[str, str | bytes | None]] = list(headers)
        while True:
            try:
                producer.produce(topic, value, key, partition, on_delivery=report, headers=sent)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(timeout) or errors:
        raise DlqError(f"writing to Kafka failed: {errors[0] if errors else 'timed out'}")


def first_tier(settings: Settings) -> str:
    """The retry tier replays go to: the first, so that they never block live traffic."""
    return settings.retry_topic(settings.retry_schedule[0])


def replay(
    settings: Settings,
    letters: Collection[DeadLetter],
    *,
    once: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Enqueue ``letters`` as fresh jobs into the first retry tier, due now; with ``once``,
    purge-mark them after the enqueue was acknowledged."""
    now = datetime.now(UTC)
    jobs = [letter.fresh_job() for letter in letters]
    topic = first_tier(settings)
    _produce_all(
        settings, [(topic, -1, j.key, j.value, j.headers(now, due_at=now)) for j in jobs], timeout
    )
    if once:
        mark_purged(settings, letters, "replayed with tidings dlq replay --once", timeout)


def mark_purged(
    settings: Settings, letters: Iterable[DeadLetter], reason: str, timeout: float
) -> None:
    """Write one purge marker per dead letter, in the dead letter's own partition."""
    topic = settings.dlq_topic
    _produce_all(
        settings,
        [
            (topic, x.partition, None, None, marker_headers(x.partition, x.offset, reason))
            for x in letters
        ],
        timeout,
    )


def delete_up_to(settings: Settings, ends: dict[int, int], timeout: float) -> None:
    """Delete every record of the dead-letter topic below ``ends`` (Kafka's DeleteRecords)."""
    admin = AdminClient(settings.kafka_config())
    wanted = [TopicPartition(settings.dlq_topic, p, end) for p, end in ends.items() if end > 0]
    if not wanted:
        return
    futures = admin.delete_records(wanted, request_timeout=timeout, operation_timeout=timeout)
    for future in futures.values():
        future.result()


# output ------------------------------------------------------------------------------------
def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Collection[int] = ()
) -> str:
    """A plain-text table: columns padded to their widest cell, ``numeric`` ones right-aligned."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _table(letters: Sequence[DeadLetter]) -> str:
    rows = []
    for letter in letters:
        job = letter.job()
        rows.append(
            (
                letter.failed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                job.stream_id or "-",
                job.event_id or "-",
                job.event_type or "-",
                job.attempts,
                job.last_http_status or "-",
                letter.reason or "-",
            )
        )
    return render_table(
        ("TIME", "STREAM", "EVENT ID", "TYPE", "ATTEMPTS", "LAST STATUS", "REASON"),
        rows,
        numeric={4, 5},
    )


def _plural(count: int) -> str:
    return f"{count} dead letter{'' if count == 1 else 's'}"


def _selected(args: argparse.Namespace, settings: Settings) -> tuple[DlqContents, DlqFilter]:
    selects = DlqFilter.from_args(args)
    return read_dead_letters(settings, args.timeout), selects


# commands ----------------------------------------------------------------------------------
@reports_errors
def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print the matching dead letters, oldest first, as a table or as JSON lines."""
    contents, selects = _selected(args, settings)
    letters = sorted((x for x in contents.letters if selects(x)), key=lambda x: x.failed_at)
    if args.json:
        for letter in letters:
            print(json.dumps(letter.to_json()))
        return 0
    if letters:
        print(_table(letters))
    print(f"({_plural(len(letters))})")
    return 0


@reports_errors
def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Enqueue the matching dead letters into the first retry tier and say how many."""
    contents, selects = _selected(args, settings)
    letters = [x for x in contents.letters if selects(x)]
    if not letters:
        print("No dead letters match; nothing replayed.")
        return 0
    replay(settings, letters, once=args.once, timeout=args.timeout)
    note = " and marked them purged" if args.once else ""
    print(f"Replayed {_plural(len(letters))} to {first_tier(settings)}{note}.")
    return 0


def _confirmed(count: int) -> bool:
    try:
        answer = input(f"Purge {_plural(count)}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


@reports_errors
def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Remove the matching dead letters after confirmation (``--yes`` skips it); declining
    purges nothing and exits 1."""
    contents, selects = _selected(args, settings)
    letters = [x for x in contents.letters if selects(x)]
    if not letters:
        print("No dead letters match; nothing purged.")
        return 0
    if not args.yes and not _confirmed(len(letters)):
        print("Aborted; nothing purged.", file=sys.stderr)
        return 1
    if selects.is_empty:
        delete_up_to(settings, contents.ends, args.timeout)
        print(f"Purged {_plural(len(letters))}: records deleted from {contents.topic}.")
    else:
        mark_purged(settings, letters, "purged with tidings dlq purge", args.timeout)
        print(f"Purged {_plural(len(letters))}: purge markers written to {contents.topic}.")
    return 0


def _filter_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("filters (all given must hold)")
    group.add_argument("--stream", metavar="est_…", help="only this stream's dead letters")
    group.add_argument(
        "--event-id", action="append", metavar="evt_…", help="only this event (repeatable)"
    )
    group.add_argument(
        "--type",
        action="append",
        metavar="TYPE",
        help="event type or wildcard like user.* (repeatable)",
    )
    group.add_argument(
        "--from",
        dest="since",
        metavar="TIME",
        help="dead-lettered at or after TIME: ISO 8601, or relative as --from=-2h",
    )
    group.add_argument(
        "--to", dest="until", metavar="TIME", help="dead-lettered at or before TIME (as --from)"
    )
    options.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for Kafka"
    )
    return options


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dlq list|replay|purge`` to the ``tidings`` command line."""
    dlq = subparsers.add_parser(
        "dlq",
        help="list, replay or purge dead letters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dlq.add_subparsers(dest="action", required=True)
    filters = _filter_options()

    listing = actions.add_parser("list", parents=[filters], help="show dead letters")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)

    again = actions.add_parser(
        "replay", parents=[filters], help="enqueue dead letters into the first retry tier"
    )
    again.add_argument(
        "--once",
        action="store_true",
        help="also mark the replayed dead letters purged, so a second replay skips them",
    )
    again.set_defaults(handler=cmd_replay)

    purge = actions.add_parser("purge", parents=[filters], help="remove dead letters")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_purge)
