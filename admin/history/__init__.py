"""Delivery history on disk: every attempt of ``tidings.deliveries`` and every dead letter of
``tidings.dlq``, kept in SQLite (one file per admin service, the default) or PostgreSQL
(shared by several admin replicas), with the Kafka offsets it has consumed.

:mod:`~admin.history.model` is what it holds, :mod:`~admin.history.store` every query,
:mod:`~admin.history.ingest` the consumer that writes it, :mod:`~admin.history.sqlite` and
:mod:`~admin.history.postgres` the two databases, :mod:`~admin.history.schema` their tables.
"""

from __future__ import annotations

from pathlib import Path

from admin.history.engine import Engine
from admin.history.store import HistoryStore
from producer.config import Settings


def open_store(settings: Settings) -> HistoryStore:
    """The store the settings name: PostgreSQL when ``history_url`` is set, else the SQLite
    file at ``history_path`` (created, or rebuilt from Kafka, when missing or unreadable)."""
    engine: Engine
    if settings.history_url is not None:
        from admin.history.postgres import PostgresEngine

        engine = PostgresEngine(settings.history_url.get_secret_value())
    else:
        from admin.history.sqlite import SqliteEngine

        engine = SqliteEngine(Path(settings.history_path))
    return HistoryStore(engine)


__all__ = ["HistoryStore", "open_store"]
