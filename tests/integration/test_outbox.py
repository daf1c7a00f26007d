"""The transactional outbox against real PostgreSQL and Kafka: an event exists iff its
transaction commits, rows are ordered by commit per subject, and the relay publishes exactly
the record the producer library would have."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from dispatch_kit import headers_of
from kafka_testkit import read_topic
from outbox_kit import lock_holders, outbox_rows, relay_process
from producer.config import Settings
from producer.outbox import Outbox, OutboxError, install
from producer.producer import codec_for
from producer.relay import APPLICATION_NAME, OutboxRelay
from schemas.errors import EventValidationError
from schemas.models import make_event


def _tidings(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "admin.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_init_is_idempotent_and_prints_its_sql(pg_dsn: str) -> None:
    """`tidings outbox init` creates the table and may run again; --print-sql shows the DDL;
    a relay started before it exits 1 saying so."""
    early = _tidings("outbox", "relay", "--dsn", pg_dsn)
    assert early.returncode == 1
    assert "tidings outbox init" in early.stderr
    for _ in range(2):
        result = _tidings("outbox", "init", "--dsn", pg_dsn)
        assert result.returncode == 0, result.stderr
    assert outbox_rows(pg_dsn) == 0
    printed = _tidings("outbox", "init", "--print-sql")
    assert "CREATE TABLE IF NOT EXISTS tidings_outbox" in printed.stdout
    missing = _tidings("outbox", "init")
    assert missing.returncode == 1
    assert "--dsn" in missing.stderr


def test_event_exists_iff_the_transaction_commits(pg_dsn: str, settings: Settings) -> None:
    """A rolled-back transaction leaves no row, a committed one leaves exactly its event; an
    invalid event raises before anything is written; autocommit outside a transaction is
    refused."""
    install(pg_dsn)
    outbox = Outbox(settings)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        with conn.transaction():
            outbox.on(conn).user_created({"user_id": "auth0|gone"})
            raise psycopg.Rollback  # the block rolls back quietly
        with conn.transaction():
            kept = outbox.on(conn).user_created({"user_id": "auth0|kept"})
            with pytest.raises(EventValidationError, match="email"):
                outbox.on(conn).user_created({"user_id": "auth0|bad", "email": 5})
        with pytest.raises(OutboxError, match="autocommit"):
            outbox.on(conn).user_created({"user_id": "auth0|alone"})
        ids = [r[0] for r in conn.execute("SELECT event_id FROM tidings_outbox")]
    assert ids == [kept]


async def test_async_writer_writes_in_the_callers_transaction(
    pg_dsn: str, settings: Settings
) -> None:
    """``on_async`` writes through an AsyncConnection inside its transaction."""
    install(pg_dsn)
    outbox = Outbox(settings)
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        async with conn.transaction():
            event_id = await outbox.on_async(conn).user_deleted(
                {"user_id": "auth0|9", "deleted_at": "2026-01-01T00:00:00.000Z"}
            )
        rows = await (
            await conn.execute("SELECT event_id, event_type FROM tidings_outbox")
        ).fetchall()
    assert rows == [(event_id, "user.deleted")]


def test_a_subject_s_seq_follows_commit_order_not_insert_order(
    pg_dsn: str, settings: Settings
) -> None:
    """Transaction B writes first (drawing a seq) and then waits at its event for subject X
    while A, which wrote X later, is still open; after A commits, B's X row gets a higher
    seq than A's: seq order is commit order for X."""
    install(pg_dsn)
    outbox = Outbox(settings)
    a_wrote = threading.Event()
    a_may_commit = threading.Event()
    with psycopg.connect(pg_dsn, autocommit=True) as b:
        b.execute("BEGIN")
        outbox.on(b).user_created({"user_id": "auth0|Y"})

        def transaction_a() -> None:
            with psycopg.connect(pg_dsn, autocommit=True) as a, a.transaction():
                outbox.on(a).user_updated({"user_id": "auth0|X", "nickname": "a"})
                a_wrote.set()
                a_may_commit.wait(10)

        thread = threading.Thread(target=transaction_a)
        thread.start()
        assert a_wrote.wait(10)
        blocked = threading.Thread(
            target=lambda: outbox.on(b).user_updated({"user_id": "auth0|X", "nickname": "b"})
        )
        blocked.start()
        blocked.join(0.5)
        assert blocked.is_alive(), "B's event for X must wait for A's transaction to end"
        a_may_commit.set()
        thread.join(10)
        blocked.join(10)
        b.execute("COMMIT")
        rows = b.execute(
            "SELECT subject, seq FROM tidings_outbox WHERE subject = 'auth0|X' ORDER BY seq"
        ).fetchall()
        y_seq = b.execute("SELECT seq FROM tidings_outbox WHERE subject = 'auth0|Y'").fetchone()
    assert len(rows) == 2
    assert y_seq is not None
    assert y_seq[0] < rows[0][1]  # B drew a seq before A, yet A's X row comes first
    nicknames = []
    with psycopg.connect(pg_dsn) as conn:
        for (value,) in conn.execute(
            "SELECT value FROM tidings_outbox WHERE subject = 'auth0|X' ORDER BY seq"
        ):
            nicknames.append(codec_for(settings).decode(value).data.object.nickname)
    assert nicknames == ["a", "b"]


def test_relay_publishes_what_the_producer_would_and_empties_the_outbox(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """A relay process publishes a committed event with the producer's key, headers and
    Avro value, wakes on the commit, and deletes the row after Kafka's acknowledgement."""
    install(pg_dsn)
    outbox = Outbox(settings)
    relay = relay_process(pg_dsn, settings, tmp_path / "relay.log").start()
    try:
        deadline = time.monotonic() + 30
        while not any(granted for _, granted in lock_holders(pg_dsn)):
            assert time.monotonic() < deadline, relay.log_tail()
            time.sleep(0.05)
        user = {"user_id": "auth0|42", "email": "ann@example.com", "email_verified": True}
        event = make_event("user.created", user, tenant=settings.tenant)
        with psycopg.connect(pg_dsn, autocommit=True) as conn, conn.transaction():
            outbox.on(conn).emit(event)
        committed = time.monotonic()
        [message] = read_topic(settings, settings.lifecycle_topic, 1, timeout=30)
        took = time.monotonic() - committed
        deadline = time.monotonic() + 10
        while outbox_rows(pg_dsn):
            assert time.monotonic() < deadline, "the acknowledged row was not deleted"
            time.sleep(0.05)
    finally:
        assert relay.terminate() == 0, relay.log_tail()
    assert message.key() == b"auth0|42"
    assert headers_of(message) == {
        "tidings-event-type": "user.created",
        "tidings-event-id": event.id,
    }
    assert codec_for(settings).decode(message.value()) == event
    print(f"commit to consumer: {took * 1000:.0f} ms")


def test_sqlalchemy_session_decides_the_event_with_its_other_writes(
    pg_dsn: str, settings: Settings
) -> None:
    """Through a SQLAlchemy Session on psycopg 3, a rolled-back session leaves no event and a
    committed one leaves its event beside its user row."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    install(pg_dsn)
    outbox = Outbox(settings)
    engine = create_engine(pg_dsn.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with Session(engine) as session:
            session.execute(text("CREATE TABLE people (id text PRIMARY KEY)"))
            session.commit()
            session.execute(text("INSERT INTO people VALUES ('auth0|gone')"))
            outbox.on_sqlalchemy(session).user_created({"user_id": "auth0|gone"})
            session.rollback()
            session.execute(text("INSERT INTO people VALUES ('auth0|kept')"))
            kept = outbox.on_sqlalchemy(session).user_created({"user_id": "auth0|kept"})
            session.commit()
    finally:
        engine.dispose()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT event_id FROM tidings_outbox").fetchall() == [(kept,)]
        assert conn.execute("SELECT id FROM people").fetchall() == [("auth0|kept",)]


def test_an_idle_relay_wakes_on_the_commit_not_on_its_poll(pg_dsn: str, settings: Settings) -> None:
    """With a 60 s safety poll, an idle relay still publishes and deletes a committed row
    within seconds: LISTEN/NOTIFY woke it."""
    install(pg_dsn)
    relay = OutboxRelay(pg_dsn, settings, idle_wait=60.0)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        assert relay.active.wait(30)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            # Commit only once the relay found the table empty: from then on only the
            # notification (or the 60 s poll) makes it look again.
            while not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE %s "
                "AND state = 'idle' AND query LIKE 'SELECT seq%%'",
                (f"{APPLICATION_NAME}:%",),
            ).fetchone():
                time.sleep(0.01)
            with conn.transaction():
                Outbox(settings).on(conn).user_created({"user_id": "auth0|woken"})
        committed = time.monotonic()
        while outbox_rows(pg_dsn):
            assert time.monotonic() - committed < 10, "the relay did not wake on the commit"
            time.sleep(0.01)
        took = time.monotonic() - committed
    finally:
        stop.set()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("NOTIFY tidings_outbox")  # wake it to notice the stop
        thread.join(30)
    assert relay.published == 1
    print(f"idle relay: commit to delete {took * 1000:.0f} ms")
