"""A private PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a fresh cluster
in a temporary directory on a free port, never the system service.

``initdb`` and the server refuse to run as root, and CI runs as root: there the cluster is
made and run as the ``postgres`` system user (created by Debian's package) through
``runuser``, in a directory that user owns. The server starts in a session of its own with
no inherited file descriptors (it outlives nothing: the fixture stops it by the pid in
``postmaster.pid``). ``wal_level=logical`` so change capture can open replication slots.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from admin.broker import free_port, port_open

#: Login role of the test clusters (trust authentication on 127.0.0.1 only).
SUPERUSER = "tidings"


class PostgresUnavailable(RuntimeError):
    """Debian's PostgreSQL server binaries are not installed (``make postgres`` installs them)."""


def server_bin_dir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` directory (``initdb``, ``postgres``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise PostgresUnavailable("no /usr/lib/postgresql/*/bin/initdb: run `make postgres`")
    return Path(found[-1]).parent


def _as_server_user() -> list[str]:
    """The command prefix that runs PostgreSQL's programs as a user they accept."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PostgresServer:
    """One private PostgreSQL cluster: ``start()``, ``dsn()``, ``create_database()``, ``stop()``."""

    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.root / "server.log"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*_as_server_user(), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=True,
        )

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Make the cluster and start the server; returns once it accepts connections."""
        bin_dir = server_bin_dir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c wal_level=logical",
                "-c max_replication_slots=20",
                "-c max_wal_senders=20",
                "-c max_connections=200",
                "-c fsync=off",  # a throw-away test cluster: durability across OS crashes is moot
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not open port {self.port}:\n{self.tail_log()}")
            time.sleep(0.05)
        return self

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection URL for ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database with a unique name; returns its DSN."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def pid(self) -> int | None:
        """The postmaster's pid, from its pid file."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its pid (fast shutdown: SIGINT), then kill it if it lingers."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def tail_log(self, lines: int = 60) -> str:
        """The end of the server log (for failure messages)."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def running_postgres() -> Iterator[PostgresServer]:
    """A started private server, stopped and removed afterwards."""
    # pytest's own temporary directories are private to root (0700); the server user needs
    # its own directory, so this one lives directly under the system's temporary directory.
    root = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
    server = PostgresServer(root=root, port=free_port())
    try:
        server.start()
    except Exception:
        print(f"--- postgres log ({server.log_file}) ---\n{server.tail_log()}")
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
