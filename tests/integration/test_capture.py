"""Change capture against real PostgreSQL and Kafka: plain SQL made with psql, including a
bulk COPY, arrives as typed user events with mapped fields and previous objects."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from capture_kit import (
    CAPTURE_MAPPING,
    CAPTURE_USERS_DDL,
    capture_process,
    copy_users_script,
    drop_slot,
    psql,
    wait_for_slot,
)
from kafka_testkit import read_topic, topic_size
from producer.capture import CAPTURE_LOCK_SPACE
from producer.capture_mapping import MappingError, load_mapping
from producer.config import Settings
from producer.outbox import Outbox, install
from producer.producer import codec_for
from schemas.models import LifecycleEvent

BULK = 10_000


def _events_by_user(settings: Settings, count: int) -> dict[str, list[LifecycleEvent]]:
    codec = codec_for(settings)
    by_user: dict[str, list[LifecycleEvent]] = defaultdict(list)
    for message in read_topic(settings, settings.lifecycle_topic, count, timeout=90):
        event = codec.decode(message.value())
        assert message.key().decode() == event.data.object.user_id
        by_user[event.data.object.user_id].append(event)
    return by_user


def test_psql_changes_and_a_bulk_copy_arrive_as_typed_user_events(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """Inserts, an update, a delete and a COPY of 10,000 users made with psql become
    user.created / user.updated (with previous_object) / user.deleted carrying the mapped,
    typed fields; a transaction that also wrote the outbox is left to the outbox."""
    install(pg_dsn)
    psql(pg_dsn, CAPTURE_USERS_DDL)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(CAPTURE_MAPPING)
    capture = capture_process(pg_dsn, settings, mapping, tmp_path / "capture.log").start()
    try:
        wait_for_slot(pg_dsn, "tidings_capture", capture)
        with psycopg.connect(pg_dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("INSERT INTO users (id, email) VALUES (3, 'svc@example.com')")
            Outbox(settings).on(conn).user_created({"user_id": "db|3"})
        psql(
            pg_dsn,
            "INSERT INTO users (id, email, full_name, meta) "
            """VALUES (1, 'ann@example.com', 'Ann', '{"plan": "pro", "seats": 3}');\n"""
            "INSERT INTO users (id, email) VALUES (2, 'bob@example.com');\n"
            "UPDATE users SET email = 'ann@new.example', email_verified = true, logins = 3 "
            "WHERE id = 1;\n"
            "DELETE FROM users WHERE id = 2;\n" + copy_users_script(1000, BULK),
        )
        by_user = _events_by_user(settings, BULK + 4)
    finally:
        status = capture.terminate()
        drop_slot(pg_dsn)
    assert status == 0, capture.log_tail()
    assert "db|3" not in by_user  # the outbox announces it; capture does not repeat it
    created, updated = by_user["db|1"]
    assert (created.type, updated.type) == ("user.created", "user.updated")
    assert created.data.object.app_metadata == {"plan": "pro", "seats": 3}
    assert created.data.object.email_verified is False
    assert created.data.object.created_at == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert updated.data.object.email == "ann@new.example"
    assert updated.data.object.email_verified is True
    assert updated.data.object.logins_count == 3
    assert updated.data.previous_object.email == "ann@example.com"
    assert updated.data.previous_object.logins_count == 0
    bob_created, bob_deleted = by_user["db|2"]
    assert (bob_created.type, bob_deleted.type) == ("user.created", "user.deleted")
    assert bob_deleted.data.object.email == "bob@example.com"
    assert bob_deleted.data.object.deleted_at == bob_deleted.time
    bulk = [by_user[f"db|{n}"] for n in range(1000, 1000 + BULK)]
    assert all(len(events) == 1 and events[0].type == "user.created" for events in bulk)
    sample: Any = bulk[123][0].data.object
    assert (sample.email, sample.name) == ("u1123@example.com", "User 1123")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table: users\nfields: {email: email}\n", "subject"),
        ("table: users\nsubject: id\nfields: {mail: email}\n", "not user fields: mail"),
        ("- not a mapping\n", "expected a mapping"),
    ],
)
def test_a_bad_mapping_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    """Mapping files missing the subject, naming unknown fields or not a mapping are refused."""
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_capture_refuses_a_mapping_naming_a_missing_column(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """`tidings capture` exits 1 naming the column the table lacks."""
    psql(pg_dsn, CAPTURE_USERS_DDL)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("table: users\nsubject: id\nfields: {email: mail}\n")
    capture = capture_process(pg_dsn, settings, mapping, tmp_path / "capture.log").start()
    assert capture.process is not None
    assert capture.process.wait(60) == 1
    assert "has no column mail" in capture.log_tail()


def test_two_capture_processes_on_one_slot_emit_each_change_once(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """Two capture processes for one slot: one holds the lock and works, the other waits;
    300 inserted users arrive exactly once each."""
    psql(pg_dsn, CAPTURE_USERS_DDL)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(CAPTURE_MAPPING)
    first = capture_process(pg_dsn, settings, mapping, tmp_path / "first.log").start()
    second = capture_process(pg_dsn, settings, mapping, tmp_path / "second.log").start()
    try:
        wait_for_slot(pg_dsn, "tidings_capture", first)
        deadline = time.monotonic() + 30
        while len(holders := _capture_lock_holders(pg_dsn)) < 2:
            assert time.monotonic() < deadline, second.log_tail()
            time.sleep(0.05)
        assert sorted(holders) == [False, True]
        psql(pg_dsn, copy_users_script(1, 100, per_transaction=10))
        psql(pg_dsn, copy_users_script(101, 200, per_transaction=1))
        messages = read_topic(settings, settings.lifecycle_topic, 300, timeout=60)
        time.sleep(1.0)  # a second emitter would have doubled them by now
        assert topic_size(settings, settings.lifecycle_topic) == 300
    finally:
        first.terminate()
        second.terminate()
        drop_slot(pg_dsn)
    assert len({m.key() for m in messages}) == 300


def _capture_lock_holders(dsn: str) -> list[bool]:
    """``granted`` of every capture connection holding or awaiting the capture lock."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.granted FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = %s "
            "AND l.objsubid = 2",
            (CAPTURE_LOCK_SPACE,),
        ).fetchall()
    return [granted for (granted,) in rows]


def test_an_outbox_added_while_capture_has_a_backlog_loses_nothing(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    """Capture ran before the outbox existed; a change made while it was stopped, then the
    outbox's installation, then a restart: the backlog still arrives (WAL older than the
    outbox's publication is read without it), and afterwards a transaction that wrote the
    outbox is left to the outbox."""
    psql(pg_dsn, CAPTURE_USERS_DDL)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(CAPTURE_MAPPING)
    log = tmp_path / "capture.log"
    capture = capture_process(pg_dsn, settings, mapping, log).start()
    try:
        wait_for_slot(pg_dsn, "tidings_capture", capture)
        assert capture.terminate() == 0
        psql(pg_dsn, "INSERT INTO users (id) VALUES (1);")
        install(pg_dsn)
        capture.start()
        psql(pg_dsn, "INSERT INTO users (id) VALUES (2);")
        read_topic(settings, settings.lifecycle_topic, 2, timeout=60)
        with psycopg.connect(pg_dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("INSERT INTO users (id) VALUES (3)")
            Outbox(settings).on(conn).user_created({"user_id": "db|3"})
        psql(pg_dsn, "INSERT INTO users (id) VALUES (4);")
        messages = read_topic(settings, settings.lifecycle_topic, 3, timeout=60)
        deadline = time.monotonic() + 60
        while b"db|4" not in {m.key() for m in messages}:
            assert time.monotonic() < deadline
            messages = read_topic(settings, settings.lifecycle_topic, len(messages) + 1, 60)
        # Capture acknowledges in commit order: user 3's event, had it been emitted, would be
        # on the topic before user 4's.
        size = topic_size(settings, settings.lifecycle_topic)
    finally:
        capture.terminate()
        drop_slot(pg_dsn)
    assert sorted(m.key() for m in messages) == [b"db|1", b"db|2", b"db|4"]
    assert size == 3
