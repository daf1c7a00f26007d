"""Helpers for the change capture tests (and bench/capture.py): the captured users table
and its mapping, psql scripts, capture processes and their replication slot."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg

from outbox_kit import TidingsProcess
from producer.config import Settings

#: The captured table of the capture tests: every mapped type, REPLICA IDENTITY FULL.
CAPTURE_USERS_DDL = """
CREATE TABLE users (
    id             bigint PRIMARY KEY,
    email          text,
    email_verified boolean NOT NULL DEFAULT false,
    full_name      text,
    logins         integer NOT NULL DEFAULT 0,
    meta           jsonb,
    created_at     timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05.678+00'
);
ALTER TABLE users REPLICA IDENTITY FULL;
"""

CAPTURE_MAPPING = """
table: users
subject: id
subject_prefix: "db|"
fields:
  email: email
  email_verified: email_verified
  name: full_name
  logins_count: logins
  app_metadata: meta
  created_at: created_at
"""


def psql(dsn: str, script: str) -> None:
    """Run an SQL script with the ``psql`` client (plain SQL from outside the service)."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def copy_users_script(first: int, count: int, per_transaction: int | None = None) -> str:
    """A psql script that COPYs users ``first``…, ``per_transaction`` rows per COPY."""
    per = per_transaction or count
    parts = []
    for start in range(first, first + count, per):
        rows = "\n".join(
            f"{n},u{n}@example.com,User {n}" for n in range(start, min(start + per, first + count))
        )
        parts.append(
            f"COPY users (id, email, full_name) FROM STDIN WITH (FORMAT csv);\n{rows}\n\\.\n"
        )
    return "".join(parts)


def capture_process(
    dsn: str, settings: Settings, mapping: Path, log_path: Path, slot: str = "tidings_capture"
) -> TidingsProcess:
    """``tidings capture --dsn … --table users --mapping …`` as a daemon child (not started)."""
    args = ["capture", "--dsn", dsn, "--table", "users", "--mapping", str(mapping), "--slot", slot]
    return TidingsProcess(args, settings, log_path)


def wait_for_slot(dsn: str, slot: str, process: TidingsProcess, timeout: float = 60.0) -> None:
    """Until capture created its replication slot (changes before it are not captured)."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone():
                return
        assert process.process is not None
        assert process.process.poll() is None, process.log_tail()
        assert time.monotonic() < deadline, process.log_tail()
        time.sleep(0.05)


def drop_slot(dsn: str, slot: str = "tidings_capture") -> None:
    """Drop a test's replication slot (a slot keeps WAL and blocks dropping its database)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active",
            (slot,),
        )
