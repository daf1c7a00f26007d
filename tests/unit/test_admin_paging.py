"""Cursor paging of the admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin.api.paging import BadCursor, decode_cursor, encode_cursor, paginate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ITEMS = [(T0 + timedelta(seconds=i % 3), f"id{i}") for i in range(7)]


@pytest.mark.parametrize("descending", [False, True])
def test_pages_cover_every_item_once_in_order(descending: bool) -> None:
    """Following ``next`` visits each item exactly once, in sort order."""
    seen: list[tuple[datetime, str]] = []
    cursor = None
    for _ in range(10):
        page = paginate(ITEMS, lambda i: i, after=cursor, take=3, descending=descending)
        seen += page.items
        cursor = page.next
        if cursor is None:
            break
    assert seen == sorted(ITEMS, reverse=descending)


def test_the_last_page_has_no_next() -> None:
    """A page holding the last item says there is nothing more."""
    assert paginate(ITEMS, lambda i: i, after=None, take=7).next is None
    assert paginate([], lambda i: i, after=None, take=7).items == []


def test_items_added_before_the_cursor_do_not_shift_the_next_page() -> None:
    """A cursor is a key, not an offset: inserting earlier items repeats nothing."""
    first = paginate(ITEMS, lambda i: i, after=None, take=3)
    grown = [(T0 - timedelta(days=1), "new"), *ITEMS]
    second = paginate(grown, lambda i: i, after=first.next, take=3)
    assert not set(first.items) & set(second.items)
    assert all(ident != "new" for _when, ident in second.items)


def test_a_cursor_round_trips() -> None:
    """Decoding an encoded cursor gives the key back (to the microsecond)."""
    key = (T0 + timedelta(microseconds=123456), "est_abc")
    assert decode_cursor(encode_cursor(key)) == key


@pytest.mark.parametrize("cursor", ["", "!!!", "bm9jb2xvbg", "MTIzOg", "eHg6eXk", "é"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    """Anything this API did not make is a BadCursor, never another exception."""
    with pytest.raises(BadCursor):
        decode_cursor(cursor)
