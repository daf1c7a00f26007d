"""The admin API's error objects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from admin.api.errors import UNION_TAGS, field_path, from_validation
from admin.api.models import StreamCreate


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (
            ("destination", "webhook", "configuration", "webhook_endpoint"),
            "destination.configuration.webhook_endpoint",
        ),
        (
            (
                "destination",
                "webhook",
                "configuration",
                "webhook_authorization",
                "basic",
                "password",
            ),
            "destination.configuration.webhook_authorization.password",
        ),
        (("subscriptions", 0, "event_type"), "subscriptions.0.event_type"),
        (("name", "webhook"), "name.webhook"),
        ((), ""),
    ],
)
def test_field_paths_drop_union_tags_only_after_a_union_field(
    loc: tuple[str | int, ...], path: str
) -> None:
    """Pydantic's tag segments vanish; an ordinary segment of the same text stays."""
    assert field_path(loc, UNION_TAGS) == path


def error_of(raw: str) -> dict[str, object]:
    with pytest.raises(ValidationError) as info:
        StreamCreate.model_validate_json(raw)
    return from_validation(info.value).body()


def test_validation_errors_name_the_field_and_never_echo_the_input() -> None:
    """A 400 names the dotted path and the reason; the secret given is not in it."""
    body = error_of(
        '{"name": "n", "subscriptions": [{"event_type": "user.created"}], "destination": '
        '{"type": "webhook", "configuration": {"webhook_endpoint": "ftp://s3cr3t-in-url", '
        '"webhook_authorization": {"method": "bearer", "token": "s3cr3t", "x": 1}}}}'
    )
    assert body["code"] == "invalid_request"
    assert body["field"] == "destination.configuration.webhook_endpoint"
    assert "s3cr3t" not in str(body)


@pytest.mark.parametrize(("raw", "code"), [("{", "invalid_json"), ("[]", "invalid_json")])
def test_malformed_or_non_object_json_is_invalid_json(raw: str, code: str) -> None:
    """Bodies that are not a JSON object get their own code."""
    assert error_of(raw)["code"] == code
