"""Cursor paging over a sorted list.

A cursor is the sort key of the last item of a page, encoded opaquely. Unlike an offset it
stays correct while items are added: a page starts strictly after the key it was given, so
nothing is repeated or skipped when new streams or deliveries arrive between two requests.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

T = TypeVar("T")

#: A sort key: a time and a unique id breaking ties.
SortKey = tuple[datetime, str]


class BadCursor(ValueError):
    """The cursor was not made by this API."""


def _micros(value: datetime) -> int:
    return round(value.timestamp() * 1_000_000)


def encode_cursor(key: SortKey) -> str:
    """An opaque cursor for ``key``."""
    raw = f"{_micros(key[0])}:{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The key a cursor encodes; :class:`BadCursor` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, ident = raw.split(":", 1)
        when = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise BadCursor("not a cursor returned by this API") from None
    if not ident:
        raise BadCursor("not a cursor returned by this API")
    return when, ident


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items of one page, and the cursor of the next (None on the last page)."""

    items: list[T]
    next: str | None


def paginate(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    *,
    after: str | None,
    take: int,
    descending: bool = False,
) -> Page[T]:
    """One page of ``items`` sorted by ``key``, starting after the cursor ``after``."""

    def order(item: T) -> tuple[int, str]:
        when, ident = key(item)
        return _micros(when), ident

    ordered = sorted(items, key=order, reverse=descending)
    if after is not None:
        when, ident = decode_cursor(after)
        bound = (_micros(when), ident)
        ordered = [i for i in ordered if (order(i) < bound if descending else order(i) > bound)]
    chunk = ordered[:take]
    more = len(ordered) > take
    return Page(chunk, encode_cursor(key(chunk[-1])) if more and chunk else None)
