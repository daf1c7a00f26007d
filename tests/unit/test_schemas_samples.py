"""Tests for schemas.samples: sample objects and events."""

from __future__ import annotations

import pytest

from schemas.constants import EVENT_TYPES
from schemas.models import EVENT_CLASSES, make_event
from schemas.samples import sample_context, sample_event, sample_object


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_sample_objects_are_valid_for_their_type(event_type: str) -> None:
    """Each sample object validates as data.object of its event type."""
    event = make_event(event_type, sample_object(event_type), tenant="t")
    assert type(event) is EVENT_CLASSES[event_type]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_a_seed_gives_the_same_object(event_type: str) -> None:
    """The same seed gives equal objects; different seeds differ."""
    assert sample_object(event_type, seed=4) == sample_object(event_type, seed=4)
    assert sample_object(event_type, seed=4) != sample_object(event_type, seed=5)
    assert sample_context(seed=4) == sample_context(seed=4)


def test_updated_sample_events_carry_no_previous_object() -> None:
    """Auth0's catalog defines no previous_object: samples (test events, the demo) send none."""
    for event_type in ("user.updated", "organization.updated", "group.updated"):
        event = sample_event(event_type, seed=1)
        assert getattr(event.data, "previous_object", None) is None
        assert event.data.context is not None


def test_unknown_event_type_is_refused() -> None:
    """Asking for a sample of an unknown type raises ValueError."""
    with pytest.raises(ValueError, match=r"session\.created"):
        sample_object("session.created")
