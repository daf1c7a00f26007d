"""The Events API's cursor: a position in the lifecycle topic, across all its partitions.

A cursor maps each partition to the next offset to read there. It travels as base64url
(unpadded) of ``partition:offset`` pairs joined by commas, e.g. ``MDoxMiwxOjc`` for
``0:12,1:7``: opaque to clients, readable in a debugger. An event's cursor is the position
just after it (and after everything the connection passed before it), so resuming from it
continues exactly after that event: no gap, no repeat.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Final

#: Longest cursor accepted (a topic with hundreds of partitions still fits).
MAX_CURSOR_CHARS: Final = 8192
_PAIR: Final = re.compile(r"^(0|[1-9][0-9]{0,5}):(0|[1-9][0-9]{0,18})$")

Positions = dict[int, int]


class CursorError(ValueError):
    """A cursor that is not one this API wrote."""


def encode_cursor(positions: Mapping[int, int]) -> str:
    """The cursor of ``positions`` (partition → next offset), partitions in order."""
    text = ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Positions:
    """The positions a cursor holds; :class:`CursorError` says why one is malformed."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise CursorError("a cursor is 1 to 8192 characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor of this API (bad encoding)") from None
    positions: Positions = {}
    for pair in text.split(","):
        match = _PAIR.match(pair)
        if match is None:
            raise CursorError("not a cursor of this API")
        partition, offset = int(match[1]), int(match[2])
        if partition in positions:
            raise CursorError("not a cursor of this API (a partition appears twice)")
        positions[partition] = offset
    if encode_cursor(positions) != cursor:
        raise CursorError("not a cursor of this API")
    return positions
