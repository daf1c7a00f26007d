"""Event ids derived from a seed (change capture's repeats keep their ids)."""

from __future__ import annotations

from schemas.ids import derived_event_id, is_event_id


def test_a_derived_id_is_well_formed_stable_and_seed_specific() -> None:
    """The same seed gives the same valid id; another seed another id."""
    first = derived_event_id(b"slot:100:0")
    assert is_event_id(first)
    assert derived_event_id(b"slot:100:0") == first
    assert derived_event_id(b"slot:100:1") != first
