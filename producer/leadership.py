"""Exactly one active process among several: a PostgreSQL session advisory lock.

The outbox relay and change capture run as several processes for availability; the one whose
connection holds the lock works, the others wait on it. The lock belongs to the holder's
connection, so when the holder dies (even ``kill -9``) PostgreSQL releases it as the socket
closes, and a waiter, blocked on the same lock, gets it at once.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import structlog

log = structlog.get_logger("tidings.leadership")


def wait_for_lock(
    conn: psycopg.Connection[Any],
    space: int,
    key: int,
    stop: threading.Event,
    *,
    retry: float = 1.0,
    role: str,
) -> bool:
    """Block until ``conn`` holds the advisory lock ``(space, key)``; False if ``stop`` was
    set first. The wait is cut every ``retry`` seconds only to look at ``stop``."""
    conn.execute(f"SET lock_timeout = '{int(retry * 1000)}ms'")
    logged = False
    while not stop.is_set():
        try:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (space, key))
        except psycopg.errors.LockNotAvailable:
            if not logged:
                log.info("standby", role=role)
                logged = True
            continue
        conn.execute("SET lock_timeout = 0")
        log.info("active", role=role)
        return True
    return False
