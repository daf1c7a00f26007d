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
from schemas.errors import EventValidationError
from schemas.fast_render import render_record_json
from schemas.ids import new_stream_id
from schemas.models import make_event
from schemas.samples import sample_context, sample_event, sample_object, sample_previous_object

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
    """Auth0-shaped input (profileData, custom_domain, previous_object) is accepted, carried
    through Avro unchanged, and renders valid; user.deleted gets deleted_at from the event
    time (in the object, not in the user before the deletion)."""
    codec = AvroCodec()
    previous = {**_auth0_user(), "email_verified": True}
    event = make_event(
        event_type, _auth0_user(), previous, context=_auth0_context(), tenant="my-tenant"
    )
    decoded = codec.decode(codec.encode(event))
    rendered = render_cloudevent(decoded, stream_id=new_stream_id())
    assert problems(rendered) == []
    data: Any = rendered["data"]
    assert data["object"]["identities"][0]["profileData"]["extra"] == 1
    assert data["context"]["request"]["custom_domain"] == "login.example.com"
    assert data["previous_object"]["identities"][0]["profileData"]["extra"] == 1
    assert "deleted_at" not in data["previous_object"]
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
        ("group.updated", ("data", "object", "updated_at"), None),
        ("group.updated", ("data", "previous_object"), {"id": "grp_1"}),
        ("group.role.deleted", ("data", "previous_object", "deleted_at"), "2025-01-01T00:00:00Z"),
        ("organization.deleted", ("data", "previous_object", "branding"), {}),
        ("organization.connection.removed", ("data", "object", "is_enabled"), True),
        ("organization.connection.updated", ("data", "object", "organization_access_level"), "x"),
        ("user.created", ("a0purpose",), "demo"),
    ],
)
def test_the_check_catches_drift_and_bad_formats(
    event_type: str, path: tuple[str, ...], value: object
) -> None:
    """The validation is not vacuous: each forbidden field, missing required field (``None``)
    or malformed value is reported, on an event that is valid before the change."""
    rendered: Any = render_cloudevent(_with_previous(event_type, 3), stream_id=new_stream_id())
    assert problems(rendered) == []
    target = rendered
    for key in path[:-1]:
        target = target.setdefault(key, {})
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    assert problems(rendered) != []


def test_samples_leave_the_optional_previous_object_out() -> None:
    """Auth0's previous_object is optional ("when applicable"): samples, which test events and
    the demo send, leave it out."""
    for event_type in EVENT_TYPES:
        assert "previous_object" not in render_cloudevent(sample_event(event_type, seed=0))["data"]


def _with_previous(event_type: str, seed: int, *, purpose: str | None = None) -> Any:
    sample = sample_event(event_type, seed=seed)
    return make_event(
        event_type,
        sample.data.object,
        sample_previous_object(event_type, seed=seed),
        sample.data.context,
        tenant=sample.tenant,
        purpose=purpose,
    )


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_previous_object_and_test_purpose_validate_on_every_type(event_type: str) -> None:
    """Every type carries Auth0's previous_object in Auth0's shape (the entity before the
    change: a user without deleted_at, the role assignment being removed) and a0purpose
    "test", through Avro and on both rendering paths."""
    codec = AvroCodec()
    for seed in range(3):
        event = _with_previous(event_type, seed, purpose="test")
        decoded = codec.decode(codec.encode(event))
        assert decoded == event
        stream_id = new_stream_id()
        rendered = render_cloudevent(decoded, stream_id=stream_id)
        assert problems(rendered) == [], (seed, rendered)
        data: Any = rendered["data"]
        assert data["previous_object"] == sample_previous_object(event_type, seed=seed)
        assert rendered["a0purpose"] == "test"
        delivered = json.loads(render_record_json(codec.decode_record(codec.encode(event))))
        delivered["a0stream"] = stream_id
        assert delivered == rendered


@pytest.mark.parametrize(
    "event_type", ["organization.connection.added", "organization.connection.updated"]
)
def test_organization_connection_access_settings_are_carried(event_type: str) -> None:
    """is_enabled and organization_access_level (Auth0's newer catalog) are accepted, carried
    through Avro and valid; an access level Auth0 does not define is refused."""
    codec = AvroCodec()
    obj = {
        **sample_object(event_type, seed=4),
        "is_enabled": False,
        "organization_access_level": "readonly",
    }
    event = make_event(event_type, obj, tenant="my-tenant")
    rendered = render_cloudevent(codec.decode(codec.encode(event)), stream_id=new_stream_id())
    assert problems(rendered) == []
    data: Any = rendered["data"]
    assert data["object"]["is_enabled"] is False
    assert data["object"]["organization_access_level"] == "readonly"
    with pytest.raises(EventValidationError, match="organization_access_level"):
        make_event(event_type, {**obj, "organization_access_level": "admin"}, tenant="t")
    data["object"]["organization_access_level"] = "admin"
    assert problems(rendered) != []
