"""The transactional outbox: lifecycle events written into the caller's own PostgreSQL
transaction, so an event exists if and only if that transaction commits.

An identity service that calls :class:`~producer.producer.EventProducer` after committing a
user loses the event if it crashes in between, and announces a phantom user if it produces
first and then rolls back. With the outbox the event is one more row in the same transaction;
``tidings outbox relay`` (:mod:`producer.relay`) publishes committed rows to Kafka afterwards::

    outbox = Outbox(settings)
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("UPDATE users SET email = %s WHERE id = %s", (email, user_id))
        outbox.on(conn).user_updated({"user_id": user_id, "email": email}, previous=before)

The methods are :class:`EventProducer`'s (same validation, event id, CloudEvents data and Avro
encoding, done here in the caller's process): a row holds the finished Kafka record (topic,
key, type and id headers, encoded value), so the relay publishes exactly what the producer
would have. ``on(conn)`` accepts a psycopg 3 ``Connection`` or ``Cursor``; ``on_async(conn)``
an ``AsyncConnection`` or ``AsyncCursor``; ``on_sqlalchemy(session)`` a SQLAlchemy
``Session`` or ``Connection`` whose engine runs on psycopg 3.

**Commit order.** A sequence drawn at insert is not commit order under concurrency. The
``BEFORE INSERT`` trigger therefore first takes a transaction-scoped advisory lock on the row's
subject (the Kafka key), held until commit or rollback, and only then draws ``seq``. Of two
transactions writing events of the same subject, the second waits at its insert until the
first has ended (PostgreSQL releases the lock after the commit became visible), so among one
subject's committed rows ``seq`` order is commit order, and a row is never visible before an
earlier-``seq`` row of its subject. The relay reads every visible row in ``seq`` order and
deletes what Kafka acknowledged, keeping no watermark: a row of another subject that commits
later with a lower ``seq`` is simply read by a later batch. Subjects are independent, as they
are on Kafka (one key, one partition). Writing events of subjects A then B in one transaction
while another writes B then A deadlocks (PostgreSQL aborts one), as the same order of row
locks on the users would.

The table is made by ``tidings outbox init --dsn …`` (or run :data:`OUTBOX_DDL` with your own
migration tool); an ``AFTER INSERT`` statement trigger notifies the relay
(``LISTEN tidings_outbox``), so it wakes at commit instead of polling.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

import psycopg
from psycopg import pq

from producer.config import Settings
from producer.errors import ProducerError
from producer.producer import _LifecycleMethods, codec_for, encode_record
from schemas.codec import AvroCodec
from schemas.models import LifecycleEvent

#: The outbox table.
TABLE: Final = "tidings_outbox"
#: The channel the insert trigger notifies and the relay listens on.
CHANNEL: Final = "tidings_outbox"
#: First key of the two-key advisory locks Tidings takes ("ti"): per subject (second key:
#: ``hashtext(subject)``) in writers' transactions, and the relay's leadership lock
#: (:data:`RELAY_LOCK_KEY`), which lives in a namespace of its own.
SUBJECT_LOCK_SPACE: Final = 0x7469
RELAY_LOCK_SPACE: Final = 0x7472
RELAY_LOCK_KEY: Final = 1
#: Second key of the lock that serialises concurrent runs of the migration.
MIGRATION_LOCK_KEY: Final = 0

#: The migration: idempotent, safe to run again on every deploy (version 1 of the table).
OUTBOX_DDL: Final = f"""
CREATE SEQUENCE IF NOT EXISTS {TABLE}_seq;

CREATE TABLE IF NOT EXISTS {TABLE} (
    seq        bigint PRIMARY KEY,  -- set by the trigger, after the subject's lock
    topic      text   NOT NULL,
    subject    text   NOT NULL,     -- the Kafka key: the user or organization id
    event_type text   NOT NULL,     -- header tidings-event-type
    event_id   text   NOT NULL,     -- header tidings-event-id (receivers dedupe on it)
    purpose    text,                -- header tidings-purpose (test events)
    value      bytea  NOT NULL,     -- the Avro-encoded event
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE OR REPLACE FUNCTION {TABLE}_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held until this transaction ends: a later transaction writing the same subject draws
    -- its seq only after this one committed or rolled back (seq order = commit order).
    PERFORM pg_advisory_xact_lock({SUBJECT_LOCK_SPACE}, hashtext(NEW.subject));
    NEW.seq := nextval('{TABLE}_seq');
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER {TABLE}_order BEFORE INSERT ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_order();

CREATE OR REPLACE FUNCTION {TABLE}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');  -- delivered at commit, once per transaction
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER {TABLE}_notify AFTER INSERT ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_notify();
"""

_INSERT: Final = (
    f"INSERT INTO {TABLE} (topic, subject, event_type, event_id, purpose, value) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)

Row = tuple[str, str, str, str, str | None, bytes]


class OutboxError(ProducerError):
    """The outbox cannot take the event (e.g. the connection is outside a transaction)."""


def install(dsn: str) -> None:
    """Create or update the outbox table, its sequence and triggers (idempotent)."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        # Two deploys running the migration at once must not race on CREATE ... IF NOT EXISTS.
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (RELAY_LOCK_SPACE, MIGRATION_LOCK_KEY))
        conn.execute(OUTBOX_DDL.encode())


class Outbox:
    """Turns lifecycle calls into outbox rows; one per process, shared by threads.

    ``topic`` defaults to the settings' lifecycle topic, ``codec`` to the one the settings ask
    for (as :class:`~producer.producer.EventProducer` does)."""

    def __init__(
        self, settings: Settings, *, codec: AvroCodec | None = None, topic: str | None = None
    ) -> None:
        self.settings = settings
        self.codec = codec or codec_for(settings)
        self.topic = topic or settings.lifecycle_topic

    def row(self, event: LifecycleEvent) -> Row:
        """The outbox row of a built event: validated, encoded and size-checked."""
        value, key, _headers = encode_record(self.codec, self.settings, event)
        return (self.topic, key, event.type, event.id, event.purpose, value)

    def on(self, conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> OutboxWriter:
        """The lifecycle methods, writing into ``conn``'s current transaction."""
        return OutboxWriter(self, conn)

    def on_sqlalchemy(self, session: Any) -> OutboxWriter:
        """The lifecycle methods, writing into a SQLAlchemy ``Session``'s (or Core
        ``Connection``'s) current transaction; the engine must use psycopg 3
        (``postgresql+psycopg://…``). Committing or rolling back the session decides the
        event, as it decides the session's other writes."""
        connection = session.connection() if callable(session.connection) else session
        driver = connection.connection.driver_connection
        if not isinstance(driver, psycopg.Connection):
            raise OutboxError(
                "the outbox needs a SQLAlchemy engine on psycopg 3 (postgresql+psycopg://…), "
                f"not {type(driver).__module__}"
            )
        return OutboxWriter(self, driver)

    def on_async(
        self, conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any]
    ) -> AsyncOutboxWriter:
        """The lifecycle methods as coroutines, writing into ``conn``'s current transaction."""
        return AsyncOutboxWriter(self, conn)


def _check_in_transaction(
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
) -> None:
    # An autocommit connection outside a transaction block would commit the event alone,
    # apart from the change it announces: refuse rather than silently lose the guarantee.
    idle = connection.info.transaction_status == pq.TransactionStatus.IDLE
    if connection.autocommit and idle:
        raise OutboxError(
            "the connection is in autocommit mode outside a transaction: write the change "
            "and its event inside `with conn.transaction():`"
        )


class OutboxWriter(_LifecycleMethods[str]):
    """:class:`EventProducer`'s methods bound to one psycopg connection or cursor: each call
    inserts the event's row in the current transaction and returns the event id."""

    def __init__(self, outbox: Outbox, conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> None:
        self._settings = outbox.settings
        self._outbox = outbox
        self._conn = conn

    def _send(self, event: LifecycleEvent) -> str:
        return self.emit(event)

    def emit(self, event: LifecycleEvent) -> str:
        """Write a built event (e.g. from :func:`schemas.models.make_event`); return its id."""
        row = self._outbox.row(event)
        connection = (
            self._conn if isinstance(self._conn, psycopg.Connection) else self._conn.connection
        )
        _check_in_transaction(connection)
        self._conn.execute(_INSERT, row)
        return event.id


class AsyncOutboxWriter(_LifecycleMethods[Awaitable[str]]):
    """:class:`OutboxWriter` for asyncio: ``await outbox.on_async(conn).user_created(user)``."""

    def __init__(
        self, outbox: Outbox, conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any]
    ) -> None:
        self._settings = outbox.settings
        self._outbox = outbox
        self._conn = conn

    def _send(self, event: LifecycleEvent) -> Awaitable[str]:
        return self.emit(event)

    async def emit(self, event: LifecycleEvent) -> str:
        """Write a built event; return its id."""
        row = self._outbox.row(event)
        connection = (
            self._conn if isinstance(self._conn, psycopg.AsyncConnection) else self._conn.connection
        )
        _check_in_transaction(connection)
        await self._conn.execute(_INSERT, row)
        return event.id
