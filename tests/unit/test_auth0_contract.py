"""Every event type Tidings renders validates against Auth0's published Event Catalog schema.

The schema (``tests/contract/``, with its source and date) is checked with ``jsonschema`` and its
format checker, so ``date-time``, ``uri`` and ``email`` values are checked too. Both rendering
paths are covered: the pydantic one (test events, the CLI) and the one the dispatcher delivers
(Avro record straight to JSON).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from auth0_catalog import catalog, problems
from schemas.cloudevents import render_cloudevent
from schemas.codec import AvroCodec
from schemas.constants import EVENT_TYPES
from schemas.fast_render import render_record_json
from schemas.ids import new_stream_id
from schemas.models import make_event
from schemas.samples import sample_context, sample_event, sample_object

_SEEDS = range(8)


def test_the_catalog_covers_every_type_tidings_knows() -> None:
    """The vendored catalog defines exactly the event types Tidings emits."""
    assert set(catalog()["events"]) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_packaged_samples_validate(event_type: str) -> None:
    """Samples (the demo's events and test events sent without data) are Auth0-valid."""
    for seed in _SEEDS:
        rendered = render_cloudevent(sample_event(event_type, seed=seed), stream_id=new_stream_id())
        assert problems(rendered) == [], (seed, rendered)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_delivered_json_validates(event_type: str) -> None:
    """What the dispatcher delivers (Avro record rendered directly) is Auth0-valid."""
    codec = AvroCodec()
    for seed in _SEEDS:
        record = codec.decode_record(codec.encode(sample_event(event_type, seed=seed)))
        delivered = json.loads(render_record_json(record))
        delivered["a0stream"] = new_stream_id()
        assert problems(delivered) == [], (seed, delivered)


def _auth0_user() -> dict[str, Any]:
    """A user exactly as Auth0 renders one, with every optional part Tidings used to refuse."""
    return {
        "user_id": "auth0|507f1f77bcf86cd799439020",
        "email": "john.doe@example.com",
        "email_verified": False,
        "username": "johndoe",
        "phone_number": "+15555555555",
        "phone_verified": False,
        "created_at": "2025-02-01T12:34:56.000Z",
        "updated_at": "2025-02-01T12:34:56.000Z",
        "identities": [
            {
                "connection": "Username-Password-Authentication",
                "user_id": "507f1f77bcf86cd799439020",
                "profileData": {"email": "john.doe@example.com", "name": "John Doe", "extra": 1},
                "provider": "auth0",
                "isSocial": False,
            }
        ],
        "app_metadata": {"plan": "pro"},
        "user_metadata": {"hobby": "skydiving"},
        "picture": "https://secure.gravatar.com/avatar/15626c5e0c749cb912f9d1ad48dba440",
        "name": "John Doe",
        "nickname": "John Doe",
        "multifactor": ["guardian"],
        "last_ip": "10.0.0.1",
        "last_login": "2025-02-01T12:34:56.000Z",
        "logins_count": 42,
        "blocked": False,
        "given_name": "John",
        "family_name": "Doe",
    }


def _auth0_context() -> dict[str, Any]:
    context = sample_context(seed=1)
    context["request"]["custom_domain"] = "login.example.com"
    return context


@pytest.mark.parametrize("event_type", ["user.created", "user.updated", "user.deleted"])
def test_auth0_shaped_user_input_is_carried_and_valid(event_type: str) -> None:
    """Auth0-shaped input (profileData, custom_domain) is accepted, carried through Avro
    unchanged, and renders valid; user.deleted gets deleted_at from the event time."""
    codec = AvroCodec()
    event = make_event(event_type, _auth0_user(), context=_auth0_context(), tenant="my-tenant")
    decoded = codec.decode(codec.encode(event))
    rendered = render_cloudevent(decoded, stream_id=new_stream_id())
    assert problems(rendered) == []
    data: Any = rendered["data"]
    assert data["object"]["identities"][0]["profileData"]["extra"] == 1
    assert data["context"]["request"]["custom_domain"] == "login.example.com"
    if event_type == "user.deleted":
        assert data["object"]["deleted_at"] == rendered["time"]


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("user.created", ("data", "context", "request", "geo", "country_code3"), "FRA"),
        ("organization.created", ("data", "object", "created_at"), "2025-01-01T00:00:00Z"),
        ("organization.deleted", ("data", "object", "branding"), {}),
        ("organization.member.role.assigned", ("data", "object", "organization", "name"), "x"),
        ("group.created", ("data", "object", "updated_at"), "2025-01-01T00:00:00Z"),
        ("user.created", ("data", "object", "created_at"), "yesterday"),
        ("user.created", ("data", "object", "picture"), "not a uri"),
        ("user.created", ("data", "object", "email"), "no-at-sign"),
        ("organization.created", ("data", "object", "branding", "logo_url"), "::"),
    ],
)
def test_the_check_catches_drift_and_bad_formats(
    event_type: str, path: tuple[str, ...], value: object
) -> None:
    """The validation is not vacuous: each forbidden field or malformed value is reported."""
    rendered: Any = render_cloudevent(sample_event(event_type, seed=3), stream_id=new_stream_id())
    target = rendered
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    assert problems(rendered) != []


def test_samples_carry_no_previous_object() -> None:
    """Auth0's catalog defines no previous_object, so samples never send one."""
    for event_type in ("user.updated", "organization.updated", "group.updated"):
        assert "previous_object" not in render_cloudevent(sample_event(event_type, seed=0))["data"]
        assert sample_object(event_type, seed=0)
