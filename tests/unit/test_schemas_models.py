"""Tests for schemas.models and schemas.entities: validated lifecycle events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.constants import EVENT_TYPES
from schemas.errors import EventValidationError
from schemas.ids import is_event_id
from schemas.models import (
    EVENT_CLASSES,
    DeletedUser,
    EventData,
    LifecycleEvent,
    OrganizationMemberRole,
    User,
    UserCreatedEvent,
    make_event,
    parse_event,
)
from schemas.samples import sample_context, sample_object, sample_previous_object

WHEN = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def _user_event(**overrides: Any) -> LifecycleEvent:
    obj = {"user_id": "auth0|1", "email": "ada@example.com", **overrides}
    return make_event("user.created", obj, tenant="acme")


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_make_event_builds_the_class_of_its_type(event_type: str) -> None:
    """make_event returns the subclass for the type, with a fresh id and the UTC time now."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    event = make_event(event_type, sample_object(event_type, seed=3), tenant="acme")
    assert type(event) is EVENT_CLASSES[event_type]
    assert event.type == event_type
    assert is_event_id(event.id)
    assert event.source == "urn:tidings:acme"
    assert event.tenant == "acme"
    assert event.specversion == "1.0"
    assert event.purpose is None
    assert before <= event.time <= datetime.now(UTC)
    assert event.time.microsecond % 1000 == 0


def test_make_event_keeps_given_id_source_time_and_purpose() -> None:
    """Explicit id, source, time (truncated to ms, converted to UTC) and purpose are kept."""
    event = make_event(
        "user.created",
        {"user_id": "auth0|1"},
        tenant="acme",
        source="urn:auth0:acme.eu.auth0.com",
        event_id="evt_" + "A" * 22,
        time=WHEN.astimezone(timezone(timedelta(hours=-5))),
        purpose="test",
    )
    assert event.id == "evt_" + "A" * 22
    assert event.source == "urn:auth0:acme.eu.auth0.com"
    assert event.time == WHEN.replace(microsecond=123000)
    assert event.time.tzinfo is UTC
    assert event.purpose == "test"


def test_object_is_validated_as_the_entity_of_its_type() -> None:
    """user.* objects are users, user.deleted ones carry deleted_at, role events carry role."""
    created = make_event("user.created", sample_object("user.created", seed=1), tenant="t")
    deleted = make_event("user.deleted", sample_object("user.deleted", seed=1), tenant="t")
    role = make_event(
        "organization.member.role.assigned",
        sample_object("organization.member.role.assigned", seed=1),
        tenant="t",
    )
    assert type(created.data.object) is User
    assert isinstance(deleted.data.object, DeletedUser)
    assert isinstance(role.data.object, OrganizationMemberRole)


def test_missing_user_id_names_the_field() -> None:
    """A user without user_id fails with the path data.object.user_id."""
    with pytest.raises(EventValidationError) as info:
        make_event("user.created", {"email": "a@example.com"}, tenant="t")
    assert info.value.paths == ("data.object.user_id",)
    assert "data.object.user_id" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email_verified", "yes"),
        ("logins_count", "5"),
        ("logins_count", -1),
        ("email", 5),
        ("created_at", "yesterday"),
        ("created_at", "2026-01-01T00:00:00"),
        ("identities", [{"connection": "c", "user_id": "1", "provider": "auth0"}]),
        ("app_metadata", "not an object"),
        ("app_metadata", {"x": float("nan")}),
        ("favourite_colour", "blue"),
    ],
)
def test_bad_user_fields_are_rejected_with_their_path(field: str, value: object) -> None:
    """Wrong types, naive or bad times, NaN, and unknown fields fail and name the field."""
    with pytest.raises(EventValidationError) as info:
        _user_event(**{field: value})
    assert any(path.startswith(f"data.object.{field}") for path in info.value.paths)


def test_deleted_at_is_only_accepted_on_user_deleted() -> None:
    """deleted_at is an unknown field on user.created; on user.deleted it defaults to the
    event time (the caller passes the user it just deleted) and must be a timestamp if given."""
    with pytest.raises(EventValidationError, match=r"data\.object\.deleted_at"):
        _user_event(deleted_at="2026-01-01T00:00:00Z")
    deleted = make_event("user.deleted", {"user_id": "auth0|1"}, tenant="t")
    assert deleted.data.object.deleted_at == deleted.time
    given = make_event(
        "user.deleted", {"user_id": "auth0|1", "deleted_at": "2026-01-01T00:00:00Z"}, tenant="t"
    )
    assert given.data.object.deleted_at.year == 2026
    with pytest.raises(EventValidationError, match=r"data\.object\.deleted_at"):
        make_event("user.deleted", {"user_id": "auth0|1", "deleted_at": "soon"}, tenant="t")


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_previous_object_on_every_event_type(event_type: str) -> None:
    """Every type carries Auth0's optional previous_object, validated as the entity before
    the change; a bad one is reported under data.previous_object."""
    previous = sample_previous_object(event_type, seed=2)
    event = make_event(event_type, sample_object(event_type, seed=2), previous, tenant="t")
    assert isinstance(event.data, EventData)
    assert event.data.previous_object is not None
    assert event.data.previous_object.model_dump(mode="json", by_alias=True, exclude_none=True) == (
        previous
    )
    with pytest.raises(EventValidationError, match=r"data\.previous_object"):
        make_event(event_type, sample_object(event_type, seed=2), {"bogus": 1}, tenant="t")


def test_a_deleted_users_previous_object_is_the_user_before() -> None:
    """user.deleted's previous_object is the user as it was: deleted_at is refused there, and
    the event time is not filled into it."""
    user = {"user_id": "auth0|1", "email": "new@example.com"}
    deleted = make_event("user.deleted", user, user, tenant="t")
    assert deleted.data.previous_object == User(user_id="auth0|1", email="new@example.com")
    with pytest.raises(EventValidationError, match=r"data\.previous_object\.deleted_at"):
        make_event("user.deleted", user, {**user, "deleted_at": WHEN}, tenant="t")


def test_unknown_event_type_is_reported_on_type() -> None:
    """An unknown type fails with the path 'type'."""
    with pytest.raises(EventValidationError) as info:
        make_event("session.created", {"user_id": "auth0|1"}, tenant="t")
    assert info.value.paths == ("type",)


@pytest.mark.parametrize("bad_id", ["evt_short", "msg_" + "a" * 22, ""])
def test_event_id_format_is_enforced(bad_id: str) -> None:
    """The id must be a well-formed evt_ id."""
    with pytest.raises(EventValidationError) as info:
        make_event("user.created", {"user_id": "auth0|1"}, tenant="t", event_id=bad_id)
    assert info.value.paths == ("id",)


def test_envelope_rejects_unknown_attributes() -> None:
    """An unknown envelope attribute is an error, not silently ignored."""
    event = _user_event()
    raw = event.model_dump()
    raw["colour"] = "blue"
    with pytest.raises(EventValidationError) as info:
        parse_event(raw)
    assert info.value.paths == ("colour",)


def test_lifecycle_event_validation_dispatches_on_type() -> None:
    """LifecycleEvent.model_validate returns the subclass for the type, equal to the original."""
    event = make_event("user.created", sample_object("user.created", seed=2), tenant="t")
    again = LifecycleEvent.model_validate(event.model_dump(by_alias=True))
    assert type(again) is UserCreatedEvent
    assert again == event
    with pytest.raises(ValidationError):
        LifecycleEvent.model_validate({**event.model_dump(), "type": "user.deleted"})


def test_entity_models_accept_model_instances() -> None:
    """make_event takes entity and context models as well as dicts."""
    user = User(user_id="auth0|1", name="Ada")
    from schemas.models import Context

    context = Context.model_validate(sample_context(seed=1))
    event = make_event("user.created", user, context=context, tenant="t")
    assert event.data.object == user
    assert event.data.context == context


def test_events_are_immutable() -> None:
    """Events are frozen: fields cannot be reassigned."""
    event = _user_event()
    with pytest.raises(ValidationError):
        event.tenant = "other"
