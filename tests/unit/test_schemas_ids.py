"""Tests for schemas.ids: prefixed random ids."""

from __future__ import annotations

import pytest

from schemas.ids import is_event_id, is_stream_id, new_event_id, new_stream_id


def test_event_id_is_prefix_and_22_base62() -> None:
    """A new event id is 'evt_' followed by 22 alphanumeric characters."""
    event_id = new_event_id()
    assert event_id.startswith("evt_")
    assert len(event_id) == 26
    assert event_id[4:].isalnum()
    assert event_id[4:].isascii()


def test_stream_id_is_prefix_and_22_base62() -> None:
    """A new stream id is 'est_' followed by 22 alphanumeric characters."""
    stream_id = new_stream_id()
    assert stream_id.startswith("est_")
    assert len(stream_id) == 26
    assert is_stream_id(stream_id)


def test_ids_do_not_repeat() -> None:
    """Ten thousand fresh ids are all distinct."""
    assert len({new_event_id() for _ in range(10_000)}) == 10_000


def test_every_position_of_the_random_part_varies_over_the_whole_alphabet() -> None:
    """No position is fixed or narrowed (a leading zero, a short draw): over 5,000 ids each
    of the 22 positions shows nearly all 62 characters."""
    tails = [new_event_id()[4:] for _ in range(5_000)]
    for position in range(22):
        assert len({tail[position] for tail in tails}) >= 60, position


def test_fresh_ids_validate_as_their_own_kind_only() -> None:
    """An event id is not a stream id and vice versa."""
    assert is_event_id(new_event_id())
    assert not is_stream_id(new_event_id())
    assert not is_event_id(new_stream_id())


@pytest.mark.parametrize(
    "value",
    [
        "evt_",
        "evt_abc",
        "evt_" + "a" * 21,
        "evt_" + "a" * 23,
        "evt_" + "a" * 21 + "-",
        "evt_" + "a" * 21 + "é",
        "EVT_" + "a" * 22,
        " evt_" + "a" * 21,
        "",
        None,
        42,
    ],
)
def test_malformed_event_ids_are_rejected(value: object) -> None:
    """Wrong prefix, length or alphabet, or a non-string, is not an event id."""
    assert not is_event_id(value)
