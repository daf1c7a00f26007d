"""Helpers for the outbox and capture tests (and bench/outbox.py): real relay processes,
concurrent writers keeping a ledger of what they committed, and the account of a topic."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from producer.config import Settings
from producer.outbox import RELAY_LOCK_KEY, RELAY_LOCK_SPACE, Outbox
from schemas.codec import AvroCodec

USERS_DDL = "CREATE TABLE IF NOT EXISTS users (id text PRIMARY KEY, version int NOT NULL DEFAULT 0)"


class TidingsProcess:
    """A ``tidings …`` command as a real daemon child: no inherited descriptors, its own
    session, stdin from /dev/null, output appended to ``log_path``; stopped by its pid."""

    def __init__(self, args: Sequence[str], settings: Settings, log_path: Path) -> None:
        self.args = list(args)
        self.env = {
            **os.environ,
            "TIDINGS_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "TIDINGS_TOPIC_PREFIX": settings.topic_prefix,
            "TIDINGS_LOG_LEVEL": "INFO",
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TidingsProcess:
        """Start the process."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "admin.cli", *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """The child's pid."""
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL by pid: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM by pid and wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def relay_process(dsn: str, settings: Settings, log_path: Path) -> TidingsProcess:
    """``tidings outbox relay --dsn …`` as a daemon child (not started)."""
    return TidingsProcess(["outbox", "relay", "--dsn", dsn], settings, log_path)


def lock_holders(dsn: str) -> list[tuple[int, bool]]:
    """(relay OS pid, granted) of every relay connection holding or awaiting the relay lock."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.application_name, l.granted FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s "
            "AND l.objsubid = 2",
            (RELAY_LOCK_SPACE, RELAY_LOCK_KEY),
        ).fetchall()
    return [(int(name.rsplit(":", 1)[1]), granted) for name, granted in rows]


@dataclass
class Ledger:
    """What the writers did: committed events (id → subject, version, commit time) and the
    ids of events whose transaction rolled back."""

    committed: dict[str, tuple[str, int, float]] = field(default_factory=dict)
    rolled_back: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Rollback(Exception):
    """Raised inside a transaction block to roll it back after the event was written."""


def seed_users(dsn: str, subjects: Sequence[str]) -> None:
    """The users table with ``subjects`` at version 0."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(USERS_DDL)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO users (id) VALUES (%s)", [(s,) for s in subjects])


def write_mutations(
    dsn: str,
    outbox: Outbox,
    ledger: Ledger,
    count: int,
    subjects: Sequence[str],
    *,
    seed: int,
    rollback_ratio: float = 0.1,
    rate: float | None = None,
) -> None:
    """``count`` transactions, each bumping a random user's version and writing its
    ``user.updated`` (nickname ``v<version>``) into the outbox; ``rollback_ratio`` of them
    roll back after writing the event. ``rate`` paces this writer (transactions per second)."""
    rng = random.Random(seed)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(count):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            subject = rng.choice(subjects)
            rollback = rng.random() < rollback_ratio
            try:
                with conn.transaction():
                    row = conn.execute(
                        "UPDATE users SET version = version + 1 WHERE id = %s RETURNING version",
                        (subject,),
                    ).fetchone()
                    assert row is not None
                    event_id = outbox.on(conn).user_updated(
                        {"user_id": subject, "nickname": f"v{row[0]}"}
                    )
                    if rollback:
                        raise _Rollback
            except _Rollback:
                with ledger.lock:
                    ledger.rolled_back.add(event_id)
                continue
            with ledger.lock:
                ledger.committed[event_id] = (subject, row[0], time.time())


def run_writers(
    dsn: str,
    outbox: Outbox,
    ledger: Ledger,
    total: int,
    subjects: Sequence[str],
    writers: int = 8,
    rate: float | None = None,
) -> list[threading.Thread]:
    """Start ``writers`` threads sharing ``total`` transactions (``rate``: in all, per s)."""
    threads = [
        threading.Thread(
            target=write_mutations,
            args=(dsn, outbox, ledger, total // writers, subjects),
            kwargs={"seed": n, "rate": rate / writers if rate else None},
            daemon=True,
        )
        for n in range(writers)
    ]
    for thread in threads:
        thread.start()
    return threads


@dataclass
class Account:
    """What reached the topic, measured against the ledger."""

    committed: int
    distinct: int
    duplicates: int
    phantom: int
    lost: int
    out_of_order: list[str]
    #: Duplicates whose id was not the id first seen for that subject and version.
    new_ids_for_old_events: int

    def line(self) -> str:
        """One printable line."""
        return (
            f"committed={self.committed} delivered={self.distinct} duplicates={self.duplicates} "
            f"phantom={self.phantom} lost={self.lost} out_of_order={len(self.out_of_order)} "
            f"new_ids_for_old_events={self.new_ids_for_old_events}"
        )


def account(messages: Sequence[Any], ledger: Ledger, codec: AvroCodec) -> Account:
    """Check every record of the topic (in partition order) against the ledger: each
    subject's first sightings must be versions 1, 2, 3… in order, repeats must carry the id
    first seen for their version, and every committed id must be there."""
    by_subject: dict[str, list[tuple[int, str]]] = defaultdict(list)
    seen_ids: set[str] = set()
    duplicates = 0
    for message in messages:
        event = codec.decode(message.value())
        version = int(str(event.data.object.nickname)[1:])
        by_subject[message.key().decode()].append((version, event.id))
        if event.id in seen_ids:
            duplicates += 1
        seen_ids.add(event.id)
    out_of_order: list[str] = []
    new_ids = 0
    for subject, sightings in by_subject.items():
        ids_of: dict[int, str] = {}
        expected = 1
        for version, event_id in sightings:
            if version in ids_of:
                new_ids += ids_of[version] != event_id
            elif version == expected:
                ids_of[version] = event_id
                expected += 1
            else:
                out_of_order.append(f"{subject}: v{version} where v{expected} was due")
    committed = set(ledger.committed)
    return Account(
        committed=len(committed),
        distinct=len(seen_ids),
        duplicates=duplicates,
        phantom=len(seen_ids - committed),
        lost=len(committed - seen_ids),
        out_of_order=out_of_order,
        new_ids_for_old_events=new_ids,
    )


def outbox_rows(dsn: str) -> int:
    """Rows waiting in the outbox."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM tidings_outbox").fetchone()
    return int(row[0]) if row else 0


def event_id_header(message: Any) -> str:
    """A lifecycle record's event id."""
    return str(dict(message.headers() or [])["tidings-event-id"].decode())


def read_until_complete(
    settings: Settings,
    expected: set[str],
    key: Callable[[Any], str] = event_id_header,
    timeout: float = 90.0,
) -> list[Any]:
    """Every record of the lifecycle topic, once ``key`` of the records covers ``expected``
    (duplicates count in a topic's size, so the size alone says nothing) or ``timeout``
    passed; the caller's account then shows what is missing."""
    from kafka_testkit import read_topic, topic_size

    topic = settings.lifecycle_topic
    deadline = time.monotonic() + timeout
    while True:
        size = topic_size(settings, topic)
        messages = read_topic(settings, topic, size, 30) if size else []
        if {key(m) for m in messages} >= expected or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)
