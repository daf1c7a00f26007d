"""Which rows of a relayed batch may be deleted when some records failed."""

from __future__ import annotations

import pytest

from producer.relay import OutboxRow, deletable


def _rows(*subjects: str) -> list[OutboxRow]:
    return [
        OutboxRow(seq, "topic", subject, "user.updated", f"evt_{seq}", None, b"")
        for seq, subject in enumerate(subjects, start=1)
    ]


@pytest.mark.parametrize(
    ("subjects", "failed", "expected"),
    [
        (("a", "b", "a"), set(), [1, 2, 3]),
        # a's first record failed: a's later record goes again after it, b is done.
        (("a", "b", "a"), {1}, [2]),
        # a failed late: its earlier record stays deleted, order is kept.
        (("a", "b", "a"), {3}, [1, 2]),
        (("a", "a", "b", "b"), {1, 3}, []),
        ((), set(), []),
    ],
)
def test_acknowledged_rows_are_deleted_except_after_a_failure_of_their_subject(
    subjects: tuple[str, ...], failed: set[int], expected: list[int]
) -> None:
    """Every acknowledged row is deletable unless an earlier row of its subject failed."""
    assert deletable(_rows(*subjects), failed) == expected
