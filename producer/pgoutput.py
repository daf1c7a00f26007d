"""A reader of PostgreSQL's ``pgoutput`` logical decoding messages (protocol version 1), and
the conversion of their text column values to Python values.

Change capture reads a replication slot through ``pg_logical_slot_peek_binary_changes``: each
row is one message of the format PostgreSQL documents as "Logical Replication Message
Formats". Only what capture needs is read: Begin, Commit, Relation and Insert, Update,
Delete with their tuples; Origin, Type and Truncate messages are recognised and skipped.
Pure functions of bytes: no database here.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

#: Timestamps in the protocol count microseconds from 2000-01-01 UTC.
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a published relation."""

    name: str
    type_oid: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    """A published table: id, schema, name, replica identity (``d``, ``f``, ``i``, ``n``)."""

    relid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        """``schema.table``."""
        return f"{self.namespace}.{self.name}"


#: A tuple as sent: per column None (NULL), :data:`UNCHANGED` (a TOASTed value the update did
#: not touch) or the value's text form.
Tuple = tuple[str | None, ...]
UNCHANGED: Final = "\x00unchanged-toast"


@dataclass(frozen=True, slots=True)
class Begin:
    """Start of a transaction: its commit LSN, commit time and xid."""

    final_lsn: int
    committed_at: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """End of a transaction; ``end_lsn`` is where the slot may be confirmed to after it."""

    commit_lsn: int
    end_lsn: int
    committed_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """A row change: ``kind`` ``insert``, ``update`` or ``delete``; ``old`` is the full
    previous row (REPLICA IDENTITY FULL), the key columns only (``old_is_key``), or None."""

    kind: str
    relid: int
    new: Tuple | None
    old: Tuple | None
    old_is_key: bool


Message = Begin | Commit | Relation | Change | None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def byte(self) -> str:
        value = chr(self.data[self.pos])
        self.pos += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\x00", self.pos)
        value = self.data[self.pos : end].decode()
        self.pos = end + 1
        return value

    def tuple(self) -> Tuple:
        count = self.unpack("!h")
        values: list[str | None] = []
        for _ in range(count):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                length = self.unpack("!i")
                values.append(self.data[self.pos : self.pos + length].decode())
                self.pos += length
            else:
                raise ValueError(f"unknown tuple column kind {kind!r}")
        return tuple(values)


def _timestamp(micros: int) -> datetime:
    return _PG_EPOCH + timedelta(microseconds=micros)


def parse(data: bytes) -> Message:
    """One pgoutput message; None for kinds capture does not use."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    if kind == "B":
        lsn, micros, xid = reader.unpack("!qqI")
        return Begin(lsn, _timestamp(micros), xid)
    if kind == "C":
        _flags, commit_lsn, end_lsn, micros = reader.unpack("!bqqq")
        return Commit(commit_lsn, end_lsn, _timestamp(micros))
    if kind == "R":
        relid = reader.unpack("!I")
        namespace, name = reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.unpack("!h")):
            flags = reader.unpack("!b")
            column = reader.string()
            type_oid, _typmod = reader.unpack("!Ii")
            columns.append(Column(column, type_oid, bool(flags & 1)))
        return Relation(relid, namespace or "public", name, identity, tuple(columns))
    if kind == "I":
        relid = reader.unpack("!I")
        reader.byte()  # 'N'
        return Change("insert", relid, reader.tuple(), None, False)
    if kind == "U":
        relid = reader.unpack("!I")
        marker = reader.byte()
        old: Tuple | None = None
        if marker in ("K", "O"):
            old = reader.tuple()
            reader.byte()  # 'N'
        return Change("update", relid, reader.tuple(), old, marker == "K")
    if kind == "D":
        relid = reader.unpack("!I")
        marker = reader.byte()
        return Change("delete", relid, None, reader.tuple(), marker == "K")
    return None  # Origin, Type, Truncate, Message


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    """An LSN from PostgreSQL's text form."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


_BOOL: Final = {16}
_INTS: Final = {20, 21, 23, 26}
_FLOATS: Final = {700, 701, 1700}
_JSON: Final = {114, 3802}
_TIMESTAMPTZ: Final = {1184}
_TIMESTAMP: Final = {1114}


def convert(text: str, type_oid: int) -> Any:
    """A column's text form as the JSON-ish value a user field takes: booleans, numbers,
    parsed json/jsonb, timestamps as aware datetimes (``timestamp`` without time zone is
    read as UTC); anything else stays text."""
    if type_oid in _BOOL:
        return text == "t"
    if type_oid in _INTS:
        return int(text)
    if type_oid in _FLOATS:
        return float(text)
    if type_oid in _JSON:
        return json.loads(text)
    if type_oid in _TIMESTAMPTZ:
        return datetime.fromisoformat(text)
    if type_oid in _TIMESTAMP:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    return text
