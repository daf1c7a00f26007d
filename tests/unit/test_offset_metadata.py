"""Tests for dispatcher.offset_metadata: finished offsets in a commit's metadata string."""

from __future__ import annotations

import random

import pytest

from dispatcher.offset_metadata import MAX_METADATA_CHARS, TAG, decode, encode


@pytest.mark.parametrize("seed", range(5))
def test_round_trip(seed: int) -> None:
    """Random sorted, disjoint ranges above the committed offset decode as encoded."""
    rng = random.Random(seed)
    committed = rng.randrange(10**12)
    ranges = []
    start = committed + 1
    for _ in range(rng.randrange(1, 200)):
        start += rng.randrange(0, 1000) if ranges else rng.randrange(0, 3)
        end = start + rng.randrange(1, 10**6)
        ranges.append((start, end))
        start = end + 1
    assert decode(committed, encode(committed, ranges)) == ranges


def test_nothing_finished_is_empty_metadata() -> None:
    """No finished range gives "", which decodes to nothing."""
    assert encode(5, []) == ""
    assert decode(5, "") == []


def test_long_runs_are_compact() -> None:
    """A million finished offsets in one run take a few characters."""
    metadata = encode(0, [(1, 1_000_001)])
    assert len(metadata) <= len(TAG) + 8
    assert decode(0, metadata) == [(1, 1_000_001)]


@pytest.mark.parametrize("max_chars", [len(TAG), 10, 64, 500, MAX_METADATA_CHARS])
def test_what_does_not_fit_is_left_out_from_the_end(max_chars: int) -> None:
    """Alternating finished and unfinished offsets (the worst case) are cut to a prefix that
    fits the limit; nothing listed is invented."""
    ranges = [(o, o + 1) for o in range(2, 20_000, 2)]
    metadata = encode(0, ranges, max_chars)
    assert len(metadata) <= max_chars
    decoded = decode(0, metadata)
    assert decoded == ranges[: len(decoded)]
    if max_chars >= 64:
        assert len(decoded) > (max_chars - len(TAG)) * 3 // 4 // 2 - 2  # about 2 bytes each


def test_a_typical_window_fits_the_default_limit() -> None:
    """A thousand in-flight offsets scattered among finished ones (a stream's largest fetch
    batch, 500, beside 500 deliveries in flight) fit the default limit whole."""
    rng = random.Random(7)
    in_flight = sorted(rng.sample(range(1, 100_000), 1000))
    ranges = [(a + 1, b) for a, b in zip([0, *in_flight], in_flight, strict=False) if b > a + 1]
    metadata = encode(0, ranges)
    assert len(metadata) <= MAX_METADATA_CHARS
    assert decode(0, metadata) == ranges


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        "",
        "written by another tool",
        "tf2:AQE",  # a later version
        TAG + "!!!",  # not base64
        TAG + "gA",  # a varint cut short
        TAG + "AQ",  # an odd count of numbers
        TAG + "AQA",  # a range of length zero
        TAG + "_____________w",  # a varint too long
    ],
)
def test_unreadable_metadata_means_nothing_known(metadata: str | None) -> None:
    """Metadata this module did not write, or cannot read, claims nothing finished."""
    assert decode(0, metadata) == []


def test_unknown_committed_offset_means_nothing_known() -> None:
    """Without a committed offset (< 0) the ranges have no base."""
    assert decode(-1001, encode(0, [(1, 5)])) == []


def test_ranges_below_the_committed_offset_are_refused() -> None:
    """Ranges must lie above the committed offset."""
    with pytest.raises(ValueError, match="above the committed offset"):
        encode(10, [(5, 8)])
