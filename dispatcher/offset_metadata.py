"""Finished offsets above a committed offset, carried in the commit's metadata string.

Kafka commits one offset per partition, "everything before this is finished". Deliveries
finish out of order, so one slow record holds that offset back while thousands behind it
finish; a crash or a rebalance would repeat them all. Kafka's OffsetCommit carries a free
metadata string per partition (at most ``offset.metadata.max.bytes``, 4096 by default), so
each commit also says which offsets above the committed one are already finished, and the
next owner of the partition skips them (the approach of Confluent's Parallel Consumer).

Encoding: the finished offsets as ranges ``[start, end)`` above the committed offset, each
written as two unsigned LEB128 varints (the distance from the end of the previous range, or
from ``committed + 1`` for the first, then the range's length), base64url without padding,
behind a version tag. A run of a million finished offsets costs a few bytes; the worst case,
finished and unfinished offsets alternating, costs about 2.7 characters per finished offset.
What does not fit ``max_chars`` is left out from the end: those offsets are simply
redelivered, as they would be without metadata.

Decoding is tolerant: metadata this module did not write (another tool, a future version,
garbage) reads as "nothing known finished".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

#: The ranges ``[start, end)`` of finished offsets.
Range = tuple[int, int]

#: Marks metadata written by this module (version 1 of the format).
TAG = "tf1:"

#: Metadata kept below the broker's default ``offset.metadata.max.bytes`` (4096): a commit
#: whose metadata is longer fails for every partition in it.
MAX_METADATA_CHARS = 4000


def encode(committed: int, finished: Iterable[Range], max_chars: int = MAX_METADATA_CHARS) -> str:
    """The metadata recording ``finished`` ranges above ``committed`` ("" when none fit).

    ``finished`` must be sorted, disjoint and above ``committed``; it is consumed lazily and
    only as far as the result fits ``max_chars``.
    """
    room = (max_chars - len(TAG)) * 3 // 4  # raw bytes whose base64 fits
    if room <= 0:
        return ""
    out = bytearray()
    previous = committed + 1
    for start, end in finished:
        pair = _varint(start - previous) + _varint(end - start)
        if len(out) + len(pair) > room:
            break
        out += pair
        previous = end
    if not out:
        return ""
    return TAG + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def decode(committed: int, metadata: str | None) -> list[Range]:
    """The finished ranges above ``committed`` recorded in ``metadata``; [] for anything this
    module did not write or cannot read."""
    if not metadata or not metadata.startswith(TAG) or committed < 0:
        return []
    text = metadata[len(TAG) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return []
    numbers = _varints(raw)
    if numbers is None or len(numbers) % 2:
        return []
    ranges: list[Range] = []
    previous = committed + 1
    for gap, length in zip(numbers[::2], numbers[1::2], strict=True):
        if length == 0:
            return []
        start = previous + gap
        ranges.append((start, start + length))
        previous = start + length
    return ranges


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"ranges must be sorted and above the committed offset: {value}")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _varints(raw: bytes) -> list[int] | None:
    numbers: list[int] = []
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
        else:
            numbers.append(value)
            value = shift = 0
    return numbers if shift == 0 else None
