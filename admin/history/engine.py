"""What the history store needs of a database: transactions for the one writer, reads for
everyone, and SQL written once (``?`` placeholders; each engine adapts them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from admin.history.schema import Dialect

Row = tuple[Any, ...]

#: Rows per multi-row INSERT (13 parameters each: well within SQLite's 32,766 and
#: PostgreSQL's 65,535 parameters per statement).
ROWS_PER_INSERT = 500


class Cursor(Protocol):
    """The part of a DB-API cursor both drivers share."""

    @property
    def description(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """Statements in one transaction (or one autocommitted read), SQL in ``?`` style."""

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def _sql(self, sql: str) -> str:
        """The statement in the driver's placeholder style."""
        return sql

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one statement; its rows (none for a write)."""
        self._cursor.execute(self._sql(sql), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()] if self._cursor.description else []

    def changed(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one write; how many rows it changed."""
        self._cursor.execute(self._sql(sql), tuple(params))
        return int(self._cursor.rowcount)

    def insert_many(
        self,
        head: str,
        values: str,
        tail: str,
        rows: Iterable[Sequence[object]],
        types: Sequence[str],
    ) -> None:
        """``head <rows shaped like values> tail`` in few statements. The rows must not repeat
        a conflict key (an upsert changes a row at most once per statement).

        Here as multi-row ``VALUES``, :data:`ROWS_PER_INSERT` rows a statement (SQLite);
        :class:`admin.history.postgres.PostgresTx` copies them instead. ``types`` are the
        columns' SQL types, for engines that need them."""
        batch = [tuple(row) for row in rows]
        if not batch:
            return
        for start in range(0, len(batch), ROWS_PER_INSERT):
            chunk = batch[start : start + ROWS_PER_INSERT]
            sql = f"{head} VALUES {', '.join([values] * len(chunk))} {tail}"
            self._cursor.execute(self._sql(sql), [v for row in chunk for v in row])


class Engine(Protocol):
    """A database holding the history: SQLite or PostgreSQL."""

    dialect: Dialect
    #: Where it is, for logs (never with a password).
    where: str

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back on error."""
        ...

    def reader(self) -> AbstractContextManager[Tx]:
        """A connection for reads (each statement sees committed data)."""
        ...

    def close(self) -> None:
        """Release every connection. Safe to call twice."""
        ...
