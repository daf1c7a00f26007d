"""Reading pgoutput messages and converting column text, from hand-built protocol bytes."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from producer.pgoutput import (
    UNCHANGED,
    Begin,
    Change,
    Commit,
    Relation,
    convert,
    lsn_int,
    lsn_text,
    parse,
)


def _tuple(*values: str | None) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            out += b"t" + struct.pack("!i", len(value.encode())) + value.encode()
    return out


def test_begin_and_commit_carry_positions_and_commit_time() -> None:
    """Begin and Commit give the LSNs and the commit time (microseconds from 2000-01-01)."""
    micros = 5 * 86_400_000_000
    assert parse(b"B" + struct.pack("!qqI", 99, micros, 7)) == Begin(
        99, datetime(2000, 1, 6, tzinfo=UTC), 7
    )
    assert parse(b"C" + struct.pack("!bqqq", 0, 100, 120, micros)) == Commit(
        100, 120, datetime(2000, 1, 6, tzinfo=UTC)
    )


def test_relation_lists_columns_with_types_and_key_flags() -> None:
    """A Relation message names the table, its replica identity and typed columns."""
    data = b"R" + struct.pack("!I", 16384) + b"public\x00users\x00" + b"f" + struct.pack("!h", 2)
    data += struct.pack("!b", 1) + b"id\x00" + struct.pack("!Ii", 20, -1)
    data += struct.pack("!b", 0) + b"email\x00" + struct.pack("!Ii", 25, -1)
    relation = parse(data)
    assert isinstance(relation, Relation)
    assert relation.qualified == "public.users"
    assert relation.replica_identity == "f"
    assert [(c.name, c.type_oid, c.is_key) for c in relation.columns] == [
        ("id", 20, True),
        ("email", 25, False),
    ]


def test_row_changes_carry_new_and_old_tuples() -> None:
    """Insert has the new row; Update the old (full or key) and new; Delete the old."""
    relid = struct.pack("!I", 5)
    assert parse(b"I" + relid + b"N" + _tuple("1", None)) == Change(
        "insert", 5, ("1", None), None, False
    )
    full = parse(b"U" + relid + b"O" + _tuple("1", "a") + b"N" + _tuple("1", UNCHANGED))
    assert full == Change("update", 5, ("1", UNCHANGED), ("1", "a"), False)
    assert parse(b"U" + relid + b"N" + _tuple("1", "b")) == Change(
        "update", 5, ("1", "b"), None, False
    )
    assert parse(b"D" + relid + b"K" + _tuple("1", None)) == Change(
        "delete", 5, None, ("1", None), True
    )
    assert parse(b"Y" + struct.pack("!I", 1) + b"public\x00t\x00") is None


@pytest.mark.parametrize(
    ("text", "oid", "expected"),
    [
        ("t", 16, True),
        ("f", 16, False),
        ("42", 23, 42),
        ("1.5", 701, 1.5),
        ('{"a": [1, 2]}', 3802, {"a": [1, 2]}),
        ("2026-01-02 03:04:05.678+00", 1184, datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02 03:04:05", 1114, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("plain", 25, "plain"),
    ],
)
def test_column_text_becomes_a_typed_value(text: str, oid: int, expected: object) -> None:
    """Booleans, integers, floats, json and timestamps are typed; other types stay text."""
    assert convert(text, oid) == expected


def test_lsn_text_round_trips() -> None:
    """LSNs convert between PostgreSQL's text form and integers."""
    assert lsn_text(lsn_int("16/B374D848")) == "16/B374D848"
