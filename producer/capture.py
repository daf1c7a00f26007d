"""``tidings capture``: lifecycle events for every change of the users table, whoever made
it (the service, an SQL script, a bulk ``COPY``), read through PostgreSQL logical decoding.

**Plugin and client.** The decoding plugin is ``pgoutput``, the one built into PostgreSQL
(10+) for its own logical replication: no extension to install, a publication filters the
table on the server, and its messages carry each column's type. psycopg 3 does not speak the
streaming replication protocol, so the slot is read over plain SQL:
``pg_logical_slot_peek_binary_changes`` returns the committed transactions after the slot's
confirmed position without consuming them, and ``pg_replication_slot_advance`` confirms a
position once Kafka acknowledged every event up to it. (``pg_recvlogical`` streams, but
confirms what it wrote to its output rather than what Kafka acknowledged, and a logical slot
cannot go back; wal2json would mean a Debian package beside the server; a replication-protocol
client would mean a second driver.) The messages are read by :mod:`producer.pgoutput`.

**At-least-once, resumable.** One cycle: peek up to ``batch_changes`` changes (whole
transactions), build and produce their events keyed by subject with the idempotent producer,
wait for every acknowledgement, then advance the slot past the last transaction. A crash
before the advance repeats those transactions; their event ids are derived from the slot,
the commit's WAL position and the change's index, so repeats carry the same ids. A restart
resumes from the slot's confirmed position. When a peek finds nothing to emit, the slot is
advanced to the WAL position read before it, so WAL of unrelated tables is not kept or
decoded again.

**Beside the outbox.** When the ``tidings_outbox`` table exists, capture also subscribes to
its inserts and skips the table changes of any transaction that wrote an outbox row: the
service announced that change itself, with its business meaning. Changes made around the
service still produce events, and none is announced twice. (An outbox installed after the
slot: its publication is created at the next start, and WAL older than it is decoded
without it, so outbox transactions of that backlog are not recognised.)

Like the relay, several capture processes may run for one slot: one holds an advisory lock
and works, the others wait (:mod:`producer.leadership`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
import structlog
from confluent_kafka import KafkaError, Message, Producer
from psycopg import sql

from producer.capture_mapping import CaptureMapping, MappingError, change_event
from producer.config import Settings
from producer.leadership import wait_for_lock
from producer.outbox import TABLE as OUTBOX_TABLE
from producer.pgoutput import Begin, Change, Commit, Relation, lsn_int, lsn_text, parse
from producer.producer import codec_for, encode_record, producer_config
from schemas.errors import EventValidationError
from schemas.ids import derived_event_id
from schemas.models import LifecycleEvent

log = structlog.get_logger("tidings.capture")

#: First key of capture's leadership lock (the second: ``hashtext(slot)``).
CAPTURE_LOCK_SPACE: Final = 0x7463
DEFAULT_SLOT: Final = "tidings_capture"

_PEEK: Final = (
    "SELECT data FROM pg_logical_slot_peek_binary_changes("
    "%s, NULL, %s, 'proto_version', '1', 'publication_names', %s)"
)


class CaptureSetupError(Exception):
    """The server refused to set capture up (its message says why); retrying will not help."""


@dataclass
class Transaction:
    """One decoded transaction: its changes in order, and whether it wrote the outbox."""

    begin: Begin
    changes: list[Change] = field(default_factory=list)
    wrote_outbox: bool = False
    commit: Commit | None = None


def transactions(
    messages: Sequence[bytes], relations: dict[int, Relation], table_relid: int | None
) -> list[Transaction]:
    """Group decoded messages into transactions; ``relations`` is kept up to date with the
    Relation messages seen. Changes of relations other than the captured table only mark a
    transaction as having written the outbox."""
    found: list[Transaction] = []
    current: Transaction | None = None
    for data in messages:
        message = parse(data)
        if isinstance(message, Begin):
            current = Transaction(message)
        elif isinstance(message, Relation):
            relations[message.relid] = message
        elif isinstance(message, Change) and current is not None:
            relation = relations.get(message.relid)
            if relation is not None and relation.name == OUTBOX_TABLE:
                current.wrote_outbox = True
            elif table_relid is None or message.relid == table_relid:
                current.changes.append(message)
        elif isinstance(message, Commit) and current is not None:
            current.commit = message
            found.append(current)
            current = None
    return found


class ChangeCapture:
    """The capture loop: ``run(stop)`` until ``stop`` is set, reconnecting after errors."""

    def __init__(
        self,
        dsn: str,
        settings: Settings,
        mapping: CaptureMapping,
        *,
        slot: str = DEFAULT_SLOT,
        batch_changes: int = 10_000,
        poll: float = 0.1,
        lock_retry: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._mapping = mapping
        self._slot = slot
        self._batch = batch_changes
        self._poll = poll
        self._lock_retry = lock_retry
        self._codec = codec_for(settings)
        self._producer = Producer(producer_config(settings, {"linger.ms": 1}))
        self.emitted = 0
        self.active = threading.Event()

    @property
    def publications(self) -> tuple[str, str]:
        """The publications of the captured table and of the outbox's inserts."""
        return f"{self._slot}_table", f"{self._slot}_outbox"

    def run(self, stop: threading.Event) -> None:
        """Wait for leadership, make sure slot and publications exist, then capture."""
        while not stop.is_set():
            try:
                with psycopg.connect(
                    self._dsn, autocommit=True, application_name=f"tidings-capture:{self._slot}"
                ) as conn:
                    key = conn.execute("SELECT hashtext(%s)", (self._slot,)).fetchone()
                    assert key is not None
                    if wait_for_lock(
                        conn,
                        CAPTURE_LOCK_SPACE,
                        key[0],
                        stop,
                        retry=self._lock_retry,
                        role="capture",
                    ):
                        table_relid = self._prepare_or_explain(conn)
                        self.active.set()
                        self._capture(conn, table_relid, stop)
            except psycopg.OperationalError as exc:
                self.active.clear()
                log.warning("capture_connection_lost", error=str(exc).strip())
                stop.wait(1.0)
        self.active.clear()
        self._producer.flush(10)

    def _prepare_or_explain(self, conn: psycopg.Connection[Any]) -> int:
        try:
            return self.prepare(conn)
        except psycopg.Error as exc:
            if conn.closed:
                raise  # the connection broke: reconnect and try again
            # wal_level not logical, no REPLICATION privilege, not the table's owner: waiting
            # will not help, so say what the server said and stop.
            raise CaptureSetupError(f"cannot set up capture: {str(exc).strip()}") from exc

    def prepare(self, conn: psycopg.Connection[Any]) -> int:
        """Create the publications and the slot where missing (idempotent); the table's oid."""
        row = conn.execute(
            "SELECT c.oid, c.relreplident FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (self._mapping.qualified_table,),
        ).fetchone()
        if row is None:
            raise MappingError(f"no table {self._mapping.qualified_table}")
        relid, identity = int(row[0]), str(row[1])
        columns = {
            name
            for (name,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
                "AND NOT attisdropped",
                (relid,),
            )
        }
        missing = sorted({self._mapping.subject, *self._mapping.fields.values()} - columns)
        if missing:
            raise MappingError(
                f"{self._mapping.qualified_table} has no column {', '.join(missing)}"
            )
        if identity != "f":
            log.warning(
                "capture_without_previous_object",
                table=self._mapping.qualified_table,
                hint="ALTER TABLE … REPLICA IDENTITY FULL to get data.previous_object on updates",
            )
        table_pub, outbox_pub = self.publications
        existing = {name for (name,) in conn.execute("SELECT pubname FROM pg_publication")}
        schema, table = self._mapping.qualified_table.split(".", 1)
        if table_pub not in existing:
            conn.execute(
                sql.SQL(
                    "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert, update, delete')"
                ).format(sql.Identifier(table_pub), sql.Identifier(schema, table))
            )
        has_outbox = conn.execute("SELECT to_regclass(%s)", (OUTBOX_TABLE,)).fetchone()
        if outbox_pub not in existing and has_outbox and has_outbox[0] is not None:
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')").format(
                    sql.Identifier(outbox_pub), sql.Identifier(OUTBOX_TABLE)
                )
            )
        slots = conn.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self._slot,)
        ).fetchone()
        if slots is None:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self._slot,))
            log.info("capture_slot_created", slot=self._slot)
        return relid

    def _capture(
        self, conn: psycopg.Connection[Any], table_relid: int, stop: threading.Event
    ) -> None:
        relations: dict[int, Relation] = {}
        publications = ",".join(
            name
            for (name,) in conn.execute(
                "SELECT pubname FROM pg_publication WHERE pubname = ANY(%s)",
                (list(self.publications),),
            )
        )
        log.info("capture_running", slot=self._slot, table=self._mapping.qualified_table)
        while not stop.is_set():
            # The peek decodes up to the WAL flushed when it starts (a commit not yet flushed,
            # as with synchronous_commit=off, is not decoded yet): read that position first.
            end = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
            assert end is not None
            rows = self._peek(conn, publications)
            found = transactions([bytes(r[0]) for r in rows], relations, table_relid)
            events = self._events(found, relations)
            if events and not self._publish(events):
                stop.wait(1.0)  # nothing confirmed: the same transactions come again
                continue
            confirm = max((t.commit.end_lsn for t in found if t.commit), default=0)
            if len(rows) < self._batch:
                # The peek read to the end of the WAL: nothing before ``end`` is left to emit.
                confirm = max(confirm, lsn_int(str(end[0])))
            if confirm:
                conn.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                    (self._slot, lsn_text(confirm)),
                )
            if not events:
                stop.wait(self._poll)

    def _peek(self, conn: psycopg.Connection[Any], publications: str) -> list[Any]:
        try:
            return conn.execute(_PEEK, (self._slot, self._batch, publications)).fetchall()
        except psycopg.errors.UndefinedObject:
            table_pub = self.publications[0]
            if publications == table_pub:
                raise
            # pgoutput looks publications up as of the WAL it decodes: WAL older than the
            # outbox's publication (created after the slot, when the outbox came later)
            # can only be read without it. Its outbox transactions are not recognised.
            log.warning("capture_outbox_publication_not_yet_in_effect", slot=self._slot)
            return conn.execute(_PEEK, (self._slot, self._batch, table_pub)).fetchall()

    def _events(
        self, found: Sequence[Transaction], relations: dict[int, Relation]
    ) -> list[LifecycleEvent]:
        events: list[LifecycleEvent] = []
        for txn in found:
            if txn.wrote_outbox:
                log.debug("capture_skipped_outbox_transaction", xid=txn.begin.xid)
                continue
            assert txn.commit is not None
            for index, change in enumerate(txn.changes):
                seed = f"{self._slot}:{txn.commit.commit_lsn}:{index}".encode()
                try:
                    event = change_event(
                        self._mapping,
                        relations[change.relid],
                        change,
                        committed_at=txn.commit.committed_at,
                        event_id=derived_event_id(seed),
                        tenant=self._settings.tenant,
                    )
                except EventValidationError as exc:
                    log.error(
                        "capture_change_rejected",
                        lsn=lsn_text(txn.commit.commit_lsn),
                        kind=change.kind,
                        error=str(exc),
                    )
                    continue
                if event is not None:
                    events.append(event)
        return events

    def _publish(self, events: Sequence[LifecycleEvent]) -> bool:
        """Produce the events in order and wait for every acknowledgement; True if all were."""
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err.str())

        topic = self._settings.lifecycle_topic
        for event in events:
            value, key, headers = encode_record(self._codec, self._settings, event)
            while True:
                try:
                    self._producer.produce(
                        topic, value, key.encode(), headers=headers, on_delivery=delivered
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
        while self._producer.flush(1.0) > 0:
            log.info("capture_waiting_for_kafka")
        if failures:
            log.warning("capture_batch_failed", failed=len(failures), error=failures[0])
            return False
        self.emitted += len(events)
        return True


def run_capture(
    dsn: str, settings: Settings, mapping: CaptureMapping, stop: threading.Event, **options: Any
) -> int:
    """Run capture until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT)."""
    capture = ChangeCapture(dsn, settings, mapping, **options)
    capture.run(stop)
    log.info("capture_stopped", emitted=capture.emitted)
    return 0
