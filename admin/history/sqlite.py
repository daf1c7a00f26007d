"""The embedded history store: one SQLite file in WAL mode.

WAL lets the API's readers run while the ingest writes; ``synchronous=NORMAL`` makes a
commit durable against a crash of the process (kill -9), not of the machine: after a power
loss the last commits may be lost, and since the Kafka offsets are in the same commits,
they are then read again, not lost. A file that cannot be opened as this schema (missing,
corrupt, another version) is moved aside and rebuilt from the topics.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from admin.history.engine import Tx
from admin.history.schema import SCHEMA_VERSION, SQLITE, statements

log = structlog.get_logger(__name__)

#: Page cache of the writer and of each reader connection (KiB): memory stays flat however
#: large the file (the readers, one per API worker thread, mostly walk index tails).
WRITER_CACHE_KIB = 16 * 1024
READER_CACHE_KIB = 4 * 1024


class SqliteEngine:
    """One writer connection and one reader connection per thread on one file."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self.where = str(self.path)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._open_checked()

    def _connect(self, cache_kib: int = WRITER_CACHE_KIB) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        return conn

    def _open_checked(self) -> sqlite3.Connection:
        """The writer connection on a file of this schema, rebuilding it when it is not."""
        existed = self.path.exists()
        try:
            conn = self._connect()
            version = self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            reason = f"unreadable: {exc}"
        else:
            if version == SCHEMA_VERSION:
                if not existed:
                    log.warning(
                        "history_store_rebuilding", path=self.where, reason="no file: created"
                    )
                return conn
            conn.close()
            reason = f"schema version {version}, expected {SCHEMA_VERSION}"
        aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{aside}{suffix}"))
        log.warning("history_store_rebuilding", path=self.where, reason=reason, moved_to=str(aside))
        conn = self._connect()
        self._prepare(conn)
        return conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> str | None:
        """WAL mode and the schema; the file's schema version."""
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            fresh = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchall()
            for statement in statements(SQLITE):
                conn.execute(statement)
            if fresh:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return str(row[0]) if row else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction, taking the file's write lock at once."""
        with self._write_lock:
            cursor = self._writer.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    @contextlib.contextmanager
    def reader(self) -> Iterator[Tx]:
        """This thread's reader connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(READER_CACHE_KIB)
            conn.execute("PRAGMA query_only = ON")
            self._readers.append(conn)
        yield Tx(conn.cursor())

    def close(self) -> None:
        """Close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for conn in [*self._readers, self._writer]:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
