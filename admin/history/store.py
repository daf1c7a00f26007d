"""The history store: every query and write of delivery history, written once for both
engines (:mod:`admin.history.sqlite`, :mod:`admin.history.postgres`).

Calls block; the admin API runs them on threads (:class:`admin.history.HistoryReader`).
Every read is answered by an index: a stream's events by first attempt time (all, or only
those not delivered), an event by its key, a dead letter by its coordinates, stats from
per-minute and per-second counters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from admin.history.batch import Batch, EventUpdate, LetterAdded, LetterPurged, Partition
from admin.history.engine import Engine, Row, Tx
from admin.history.model import (
    STATUS_CODES,
    STATUSES,
    Coordinates,
    DeadLetter,
    EventFacts,
    EventHistory,
    HistoryFilter,
    decode_attempts,
    from_micros,
    micros,
)
from dispatcher.delivery_log import AttemptStatus
from dispatcher.subscriptions import matches

#: A name's number, given inside a write: (kind, name) -> id.
_Ident = Callable[[str, str], int]

#: Kinds of numbered names.
STREAM, TYPE, TOPIC = "s", "t", "p"

EVENT_COLUMNS: Final = (
    "stream, event_id, type, first_at, last_at, last_n, status, event_time, purpose, "
    "origin_topic, origin_part, origin_offset, dlq_topic, dlq_part, dlq_offset, dlq_at, "
    "dlq_reason, dlq_http, attempts"
)

# An attempt's update keeps the latest attempt's status and time; the first attempt time is
# the earliest seen (an event known only from its dead letter takes its first attempt's).
_LATER = "(events.last_n IS NULL OR excluded.last_at > events.last_at OR "
_LATER += "(excluded.last_at = events.last_at AND excluded.last_n >= events.last_n))"
# The latest attempt that knows where the event lies says so.
_ORIGIN = f"excluded.origin_topic IS NOT NULL AND (events.origin_topic IS NULL OR {_LATER})"
ATTEMPTS_HEAD: Final = f"INSERT INTO events ({EVENT_COLUMNS})"
ATTEMPTS_VALUES: Final = (
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, ?)"
)
ATTEMPTS_TYPES: Final = (
    "bigint", "text", "bigint", "bigint", "bigint", "integer", "integer", "bigint", "text",
    "bigint", "integer", "bigint", "text",
)  # fmt: skip
ATTEMPTS_TAIL: Final = f"""
ON CONFLICT (stream, event_id) DO UPDATE SET
  type = excluded.type,
  first_at = CASE WHEN events.last_n IS NULL OR excluded.first_at < events.first_at
                  THEN excluded.first_at ELSE events.first_at END,
  status = CASE WHEN {_LATER} THEN excluded.status ELSE events.status END,
  last_at = CASE WHEN {_LATER} THEN excluded.last_at ELSE events.last_at END,
  last_n = CASE WHEN {_LATER} THEN excluded.last_n ELSE events.last_n END,
  event_time = COALESCE(excluded.event_time, events.event_time),
  purpose = COALESCE(excluded.purpose, events.purpose),
  origin_topic = CASE WHEN {_ORIGIN} THEN excluded.origin_topic ELSE events.origin_topic END,
  origin_part = CASE WHEN {_ORIGIN} THEN excluded.origin_part ELSE events.origin_part END,
  origin_offset = CASE WHEN {_ORIGIN} THEN excluded.origin_offset ELSE events.origin_offset END,
  attempts = events.attempts || excluded.attempts
"""

_NEWER_LETTER = "(events.dlq_at IS NULL OR events.dlq_at <= excluded.dlq_at)"
UPSERT_LETTER: Final = f"""
INSERT INTO events ({EVENT_COLUMNS})
VALUES (?, ?, ?, ?, ?, NULL, 2, NULL, NULL, NULL, NULL, NULL, ?, ?, ?, ?, ?, ?, '')
ON CONFLICT (stream, event_id) DO UPDATE SET
""" + ",\n".join(
    f"  {column} = CASE WHEN {_NEWER_LETTER} THEN excluded.{column} ELSE events.{column} END"
    for column in ("dlq_topic", "dlq_part", "dlq_offset", "dlq_at", "dlq_reason", "dlq_http")
)

_AT_LETTER = "dlq_topic = ? AND dlq_part = ? AND dlq_offset = ?"


COUNTER_TYPES: Final = ("bigint", "bigint", "bigint", "bigint", "bigint")


def _upsert_counters(table: str) -> tuple[str, str, str]:
    return (
        f"INSERT INTO {table} (stream, at, ok, retrying, failed)",
        "(?, ?, ?, ?, ?)",
        f"ON CONFLICT (stream, at) DO UPDATE SET ok = {table}.ok + excluded.ok, "
        f"retrying = {table}.retrying + excluded.retrying, "
        f"failed = {table}.failed + excluded.failed",
    )


class OffsetConflict(RuntimeError):
    """Another writer moved a partition's offset: this batch was not written. The ingest
    rereads the offsets and resumes from them."""


class HistoryStore:
    """Delivery history in a database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ids: dict[tuple[str, str], int] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self._names_lock = threading.Lock()

    # names ---------------------------------------------------------------------------------
    def _remember(self, rows: Iterable[Row]) -> None:
        with self._names_lock:
            for ident, kind, name in rows:
                self._ids[(kind, name)] = ident
                self._names[ident] = (kind, name)

    def _load_names(self, tx: Tx) -> None:
        self._remember(tx.execute("SELECT id, kind, name FROM names"))

    def _write_id(self, tx: Tx, kind: str, name: str) -> int:
        ident = self._ids.get((kind, name))
        if ident is None:
            tx.execute(
                "INSERT INTO names (kind, name) VALUES (?, ?) ON CONFLICT (kind, name) DO NOTHING",
                (kind, name),
            )
            rows = tx.execute("SELECT id FROM names WHERE kind = ? AND name = ?", (kind, name))
            # Not remembered until committed: a rolled-back id may be given to another name.
            ident = int(rows[0][0])
        return ident

    def _read_id(self, tx: Tx, kind: str, name: str) -> int | None:
        ident = self._ids.get((kind, name))
        if ident is None:
            rows = tx.execute(
                "SELECT id, kind, name FROM names WHERE kind = ? AND name = ?", (kind, name)
            )
            self._remember(rows)
            ident = rows[0][0] if rows else None
        return ident

    def _name(self, tx: Tx, ident: int) -> str:
        named = self._names.get(ident)
        if named is None:
            self._load_names(tx)
            named = self._names[ident]
        return named[1]

    # writes --------------------------------------------------------------------------------
    def offsets(self) -> dict[Partition, int]:
        """The next offset to read per partition, as last committed."""
        with self.engine.reader() as tx:
            rows = tx.execute("SELECT topic, part, next_offset FROM offsets")
        return {(topic, part): offset for topic, part, offset in rows}

    def write(self, batch: Batch, since: dict[Partition, int]) -> None:
        """Write a batch and its offsets in one transaction. ``since`` holds the offsets
        the batch was read from; if the store's differ (another writer moved on), nothing is
        written and :class:`OffsetConflict` is raised."""
        written: list[tuple[str, str, int]] = []
        with self.engine.transaction() as tx:
            ids: dict[tuple[str, str], int] = {}

            def ident(kind: str, name: str) -> int:
                key = (kind, name)
                if key not in ids:
                    ids[key] = self._write_id(tx, kind, name)
                    written.append((kind, name, ids[key]))
                return ids[key]

            for (topic, part), offset in batch.offsets.items():
                before = since.get((topic, part))
                if before is None:
                    sql = "INSERT INTO offsets (topic, part, next_offset) VALUES (?, ?, ?) "
                    sql += "ON CONFLICT (topic, part) DO NOTHING"
                    moved = tx.changed(sql, (topic, part, offset))
                else:
                    moved = tx.changed(
                        "UPDATE offsets SET next_offset = ? "
                        "WHERE topic = ? AND part = ? AND next_offset = ?",
                        (offset, topic, part, before),
                    )
                if moved != 1:
                    raise OffsetConflict(f"{topic}[{part}] was written by another writer")
            tx.insert_many(
                ATTEMPTS_HEAD,
                ATTEMPTS_VALUES,
                ATTEMPTS_TAIL,
                [self._attempt_row(e, ident) for e in batch.events.values()],
                ATTEMPTS_TYPES,
            )
            for change in batch.letters:
                self._apply_letter(tx, change, ident)
            for table, counters in (
                ("stats_second", batch.seconds),
                ("stats_minute", batch.minutes),
            ):
                tx.insert_many(
                    *_upsert_counters(table),
                    [
                        (ident(STREAM, stream), at, *counts)
                        for (stream, at), counts in counters.items()
                    ],
                    COUNTER_TYPES,
                )
        self._remember((i, kind, name) for kind, name, i in written)

    @staticmethod
    def _attempt_row(update: EventUpdate, ident: _Ident) -> tuple[object, ...]:
        origin = update.origin
        return (
            ident(STREAM, update.stream_id),
            update.event_id,
            ident(TYPE, update.event_type),
            update.first_at,
            update.last_at,
            update.last_n,
            update.status,
            update.event_time,
            update.purpose,
            ident(TOPIC, origin.topic) if origin else None,
            origin.partition if origin else None,
            origin.offset if origin else None,
            update.lines,
        )

    @staticmethod
    def _apply_letter(tx: Tx, change: LetterAdded | LetterPurged, ident: _Ident) -> None:
        if isinstance(change, LetterPurged):
            where = change.where
            coordinates = (ident(TOPIC, where.topic), where.partition, where.offset)
            tx.execute(f"DELETE FROM events WHERE {_AT_LETTER} AND last_n IS NULL", coordinates)
            nulls = ", ".join(
                f"{c} = NULL"
                for c in ("dlq_topic", "dlq_part", "dlq_offset", "dlq_at", "dlq_reason", "dlq_http")
            )
            tx.execute(f"UPDATE events SET {nulls} WHERE {_AT_LETTER}", coordinates)
            return
        letter = change.letter
        at = micros(letter.at)
        tx.execute(
            UPSERT_LETTER,
            (
                ident(STREAM, change.stream_id),
                change.event_id,
                ident(TYPE, change.event_type),
                at,
                at,
                ident(TOPIC, letter.where.topic),
                letter.where.partition,
                letter.where.offset,
                at,
                letter.reason,
                letter.http_status,
            ),
        )

    def expire(self, before: datetime, chunk: int) -> int:
        """Delete up to ``chunk`` events per stream whose first attempt is before ``before``,
        and the counters wholly before it; how many events went. Call until it returns 0."""
        cutoff = micros(before)
        second = int(before.timestamp())
        with self.engine.reader() as tx:
            self._load_names(tx)
        streams = [i for i, (kind, _) in list(self._names.items()) if kind == STREAM]
        deleted = 0
        for stream in streams:
            with self.engine.transaction() as tx:
                deleted += tx.changed(
                    "DELETE FROM events WHERE (stream, event_id) IN (SELECT stream, event_id "
                    "FROM events WHERE stream = ? AND first_at < ? ORDER BY first_at LIMIT ?)",
                    (stream, cutoff, chunk),
                )
                for table, at in (("stats_second", second), ("stats_minute", second - 59)):
                    tx.execute(f"DELETE FROM {table} WHERE stream = ? AND at < ?", (stream, at))
        return deleted

    # reads ---------------------------------------------------------------------------------
    def _history(self, tx: Tx, stream_id: str, row: Row) -> EventHistory:
        (
            _stream,
            event_id,
            type_id,
            _first,
            _last,
            _n,
            _status,
            event_time,
            purpose,
            origin_topic,
            origin_part,
            origin_offset,
            dlq_topic,
            dlq_part,
            dlq_offset,
            dlq_at,
            dlq_reason,
            dlq_http,
            lines,
        ) = row
        event_type = self._name(tx, type_id)
        origin = (
            Coordinates(self._name(tx, origin_topic), origin_part, origin_offset)
            if origin_topic is not None
            else None
        )
        facts = EventFacts(
            stream_id,
            event_id,
            event_type,
            from_micros(event_time) if event_time is not None else None,
            purpose,
            origin,
        )
        letter = (
            DeadLetter(
                from_micros(dlq_at),
                dlq_reason,
                Coordinates(self._name(tx, dlq_topic), dlq_part, dlq_offset),
                dlq_http,
            )
            if dlq_offset is not None
            else None
        )
        return EventHistory(stream_id, event_id, event_type, decode_attempts(lines, facts), letter)

    def get(self, stream_id: str, event_id: str) -> EventHistory | None:
        """One event's history for one stream."""
        with self.engine.reader() as tx:
            stream = self._read_id(tx, STREAM, stream_id)
            if stream is None:
                return None
            rows = tx.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? AND event_id = ?",
                (stream, event_id),
            )
            return self._history(tx, stream_id, rows[0]) if rows else None

    def events(
        self,
        stream_id: str,
        selected: HistoryFilter | None = None,
        *,
        before: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[EventHistory]:
        """The stream's events that ``selected`` picks, newest first attempt first;
        ``before`` a (first attempt, event id) to continue after; at most ``limit``."""
        selected = selected or HistoryFilter()
        with self.engine.reader() as tx:
            stream = self._read_id(tx, STREAM, stream_id)
            if stream is None:
                return []
            where, params = self._where(tx, stream, selected)
            if where is None:
                return []
            if before is not None:
                where += " AND (first_at, event_id) < (?, ?)"
                params += [micros(before[0]), before[1]]
            sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} "
            sql += "ORDER BY first_at DESC, event_id DESC"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            return [self._history(tx, stream_id, row) for row in tx.execute(sql, params)]

    def _where(
        self, tx: Tx, stream: int, selected: HistoryFilter
    ) -> tuple[str | None, list[object]]:
        where = "stream = ?"
        params: list[object] = [stream]
        if selected.statuses is not None:
            codes = sorted(STATUS_CODES[s] for s in selected.statuses)
            if 0 not in codes:
                # Said outright so both databases pick the index of undelivered events.
                where += " AND status <> 0"
            where += f" AND status IN ({', '.join('?' * len(codes))})"
            params += codes
        if selected.event_types is not None:
            self._load_names(tx)
            types = [
                i
                for i, (kind, name) in list(self._names.items())
                if kind == TYPE and matches(selected.event_types, name)
            ]
            if not types:
                return None, []
            where += f" AND type IN ({', '.join('?' * len(types))})"
            params += types
        if selected.date_from is not None:
            where += " AND first_at >= ?"
            params.append(micros(selected.date_from))
        if selected.date_to is not None:
            where += " AND first_at < ?"
            params.append(micros(selected.date_to))
        return where, params

    def counters(self, stream_id: str, start: int, end: int, *, minutes: bool) -> list[Row]:
        """``(second, success, retrying, failed)`` of the stream's per-minute or per-second
        counters whose start is in ``[start, end)`` (seconds since the epoch)."""
        table = "stats_minute" if minutes else "stats_second"
        with self.engine.reader() as tx:
            stream = self._read_id(tx, STREAM, stream_id)
            if stream is None:
                return []
            return tx.execute(
                f"SELECT at, ok, retrying, failed FROM {table} "
                "WHERE stream = ? AND at >= ? AND at < ? ORDER BY at",
                (stream, start, end),
            )

    def totals(self) -> dict[str, dict[AttemptStatus, int]]:
        """Attempts retained per stream and status."""
        with self.engine.reader() as tx:
            rows = tx.execute(
                "SELECT stream, SUM(ok), SUM(retrying), SUM(failed) FROM stats_minute "
                "GROUP BY stream"
            )
            return {
                self._name(tx, stream): dict(zip(STATUSES, map(int, counts), strict=True))
                for stream, *counts in rows
            }

    def dead_letters(self) -> dict[str, int]:
        """Events with a dead letter, per stream."""
        with self.engine.reader() as tx:
            rows = tx.execute(
                "SELECT stream, COUNT(*) FROM events WHERE dlq_offset IS NOT NULL GROUP BY stream"
            )
            return {self._name(tx, stream): int(count) for stream, count in rows}

    def close(self) -> None:
        """Close the database. Safe to call twice."""
        self.engine.close()
