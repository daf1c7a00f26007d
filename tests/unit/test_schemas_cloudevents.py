"""Tests for schemas.cloudevents: the JSON Auth0 Event Streams delivers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from schemas.cloudevents import (
    event_from_object,
    parse_cloudevent,
    render_cloudevent,
    render_cloudevent_json,
)
from schemas.constants import EVENT_TYPES
from schemas.errors import EventValidationError
from schemas.models import make_event
from schemas.samples import sample_event, sample_object

WHEN = datetime(2026, 11, 26, 12, 0, 0, 123000, tzinfo=UTC)
EVENT_ID = "evt_" + "a1B2" * 5 + "xy"
STREAM_ID = "est_" + "Z9" * 11
RFC3339_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _delivered(event_type: str, **kwargs: str) -> dict[str, object]:
    event = make_event(
        event_type,
        sample_object(event_type, seed=11),
        tenant="acme",
        event_id=EVENT_ID,
        time=WHEN,
    )
    parsed = json.loads(render_cloudevent_json(event, stream_id=STREAM_ID, **kwargs))
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_envelope_has_auth0_attributes(event_type: str) -> None:
    """Every event renders specversion, type, source, id, time, a0tenant, a0stream and data."""
    body = _delivered(event_type)
    assert body["specversion"] == "1.0"
    assert body["type"] == event_type
    assert body["source"] == "urn:tidings:acme"
    assert body["id"] == EVENT_ID
    assert body["time"] == "2026-11-26T12:00:00.123Z"
    assert body["a0tenant"] == "acme"
    assert body["a0stream"] == STREAM_ID
    assert "a0purpose" not in body
    assert set(body) == {
        "specversion", "type", "source", "id", "time", "a0tenant", "a0stream", "data",
    }  # fmt: skip


@pytest.mark.parametrize("event_type", ["user.created", "user.updated", "user.deleted"])
def test_user_object_uses_auth0_field_names(event_type: str) -> None:
    """data.object of user events carries Auth0's user attributes, times as RFC 3339 ms Z."""
    expected = sample_object(event_type, seed=11)
    obj = _delivered(event_type)["data"]["object"]  # type: ignore[index]
    for field in ("user_id", "email", "name", "nickname", "given_name", "family_name"):
        assert obj[field] == expected[field]
    for field in ("created_at", "updated_at", "last_login"):
        assert RFC3339_MILLIS.match(obj[field])
        assert obj[field] == expected[field]
    assert obj["identities"][0]["isSocial"] is False
    assert obj["app_metadata"] == expected["app_metadata"]
    assert obj["logins_count"] == expected["logins_count"]
    assert ("deleted_at" in obj) == (event_type == "user.deleted")


def test_organization_and_member_objects_render_nested() -> None:
    """Organization branding, and membership organization/user/role, render as objects."""
    org = _delivered("organization.created")["data"]["object"]  # type: ignore[index]
    assert org["branding"]["colors"]["page_background"] == "#ffffff"
    assert isinstance(org["metadata"], dict)
    role = _delivered("organization.member.role.assigned")["data"]["object"]  # type: ignore[index]
    assert set(role) == {"organization", "user", "role"}
    assert role["user"]["user_id"].startswith("auth0|")
    assert role["role"]["id"].startswith("rol_")


def test_absent_fields_are_omitted_but_nulls_in_maps_are_kept() -> None:
    """Unset entity fields have no key; a null inside app_metadata stays null."""
    event = make_event(
        "user.created",
        {"user_id": "auth0|1", "app_metadata": {"a": None, "b": [None]}},
        tenant="t",
    )
    data = render_cloudevent(event)["data"]
    assert data == {"object": {"user_id": "auth0|1", "app_metadata": {"a": None, "b": [None]}}}


def test_previous_object_and_context_render_when_present() -> None:
    """A user.updated given a previous object and a context renders both."""
    sample = sample_event("user.updated", seed=2)
    obj = sample.data.object
    previous = obj.model_copy(update={"email": "old@example.com"})
    event = make_event("user.updated", obj, previous, sample.data.context, tenant="t")
    data = render_cloudevent(event)["data"]
    assert isinstance(data, dict)
    assert set(data) == {"object", "previous_object", "context"}
    assert data["context"]["request"]["geo"]["country_code"] == "FR"


def test_purpose_is_rendered_only_when_set() -> None:
    """a0purpose comes from the argument, else from the event, else is absent."""
    assert _delivered("user.created", purpose="test")["a0purpose"] == "test"
    test_event = make_event("user.created", {"user_id": "auth0|1"}, tenant="t", purpose="test")
    assert render_cloudevent(test_event)["a0purpose"] == "test"
    assert "a0stream" not in render_cloudevent(test_event)


def test_json_is_compact_utf8_and_keeps_unicode() -> None:
    """The body is UTF-8 JSON with non-ASCII characters written as themselves."""
    event = make_event("user.created", {"user_id": "auth0|1", "name": "Søren 日本"}, tenant="t")
    body = render_cloudevent_json(event)
    assert "Søren 日本".encode() in body
    assert b", " not in body


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_parse_inverts_render(event_type: str) -> None:
    """Parsing a rendered event (with a0stream and a0purpose) gives the event back."""
    event = make_event(event_type, sample_object(event_type, seed=3), tenant="acme", purpose="test")
    body = json.loads(render_cloudevent_json(event, stream_id=STREAM_ID))
    assert parse_cloudevent(body) == event


def test_parse_names_bad_fields() -> None:
    """A delivered body with a broken object or unknown attribute fails with its path."""
    body = _delivered("user.created")
    body["data"]["object"]["email_verified"] = "yes"  # type: ignore[index]
    body["extra"] = 1
    with pytest.raises(EventValidationError) as info:
        parse_cloudevent(body)
    assert set(info.value.paths) == {"data.object.email_verified", "extra"}
    with pytest.raises(EventValidationError, match="tenant"):
        parse_cloudevent({**_delivered("user.created"), "tenant": "acme"})


def test_event_from_object_accepts_json_text() -> None:
    """The CLI path: a data.object given as JSON text becomes a valid event."""
    obj = json.dumps(sample_object("organization.updated", seed=1))
    previous = json.dumps({"id": "org_1", "name": "old"})
    event = event_from_object("organization.updated", obj, previous=previous, tenant="acme")
    assert event.type == "organization.updated"
    assert event.data.object.model_dump(mode="json", exclude_none=True) == json.loads(obj)


@pytest.mark.parametrize(("text", "message"), [("{nope", "invalid JSON"), ("[1]", "object")])
def test_event_from_object_rejects_bad_json(text: str, message: str) -> None:
    """Text that is not a JSON object fails on data.object."""
    with pytest.raises(EventValidationError, match=message) as info:
        event_from_object("user.created", text, tenant="t")
    assert info.value.paths == ("data.object",)
