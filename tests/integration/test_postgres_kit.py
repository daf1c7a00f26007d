"""The tests' private PostgreSQL server: reachable, logical decoding on, databases apart."""

from __future__ import annotations

import psycopg

from postgres_kit import PostgresServer


def test_each_test_gets_its_own_database_on_a_logical_wal_server(
    pg_dsn: str, postgres_server: PostgresServer
) -> None:
    """A fresh database answers, and the server can open logical replication slots."""
    other = postgres_server.create_database()
    assert other != pg_dsn
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        conn.execute("CREATE TABLE mark (n int)")
    with psycopg.connect(other) as conn:
        found = conn.execute("SELECT to_regclass('mark')").fetchone()
        assert found == (None,)
