"""Compare-and-set on the registry topic, judged by each reader."""

from __future__ import annotations

import pytest

from dispatcher.registry_order import BadConditionError, RegistryOrder, if_offset_of
from schemas.constants import HEADER_IF_OFFSET


def test_unconditional_records_always_apply() -> None:
    """Plain writes are last-writer-wins, as before; a tombstone marks the id deleted."""
    order = RegistryOrder()
    assert order.admit("est_a", 3, False, None)
    assert order.admit("est_a", 7, False, None)
    assert order.offsets == {"est_a": 7}
    assert order.admit("est_a", 9, True, None)
    assert order.offsets == {}
    assert order.deleted == {"est_a"}


def test_a_conditional_record_applies_only_on_its_base() -> None:
    """Based on the current record: applies. Based on an older one (a change landed in
    between): ignored, and the current record stays current."""
    order = RegistryOrder()
    order.admit("est_a", 3, False, None)
    order.admit("est_a", 5, False, None)  # the concurrent change
    assert not order.admit("est_a", 6, False, 3)  # the rewrite based on offset 3
    assert order.offsets == {"est_a": 5}
    assert order.admit("est_a", 8, False, 5)  # the retry, based on the change
    assert order.offsets == {"est_a": 8}


def test_a_conditional_record_never_brings_back_a_deleted_stream() -> None:
    """Deleted between the read and the rewrite: the rewrite is ignored."""
    order = RegistryOrder()
    order.admit("est_a", 3, False, None)
    order.admit("est_a", 4, True, None)
    assert not order.admit("est_a", 5, False, 3)
    assert "est_a" in order.deleted


def test_a_conditional_record_whose_base_was_compacted_away_applies() -> None:
    """After compaction a reader may see the conditional record first: it is the state."""
    order = RegistryOrder()
    assert order.admit("est_a", 12, False, 3)
    assert order.offsets == {"est_a": 12}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ([], None),
        ([("other", b"1")], None),
        ([(HEADER_IF_OFFSET, b"42")], 42),
        ({HEADER_IF_OFFSET: "7"}, 7),
    ],
)
def test_the_condition_header(headers: object, expected: int | None) -> None:
    """The base offset is read from ``tidings-if-offset``; no header, no condition."""
    assert if_offset_of(headers) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [b"", b"x", b"-1", b"\xff", None])
def test_a_bad_condition_header_is_an_error(value: bytes | None) -> None:
    """A header that is not an offset cannot be judged: the reader skips the record."""
    with pytest.raises(BadConditionError):
        if_offset_of([(HEADER_IF_OFFSET, value)])
