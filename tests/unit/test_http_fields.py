"""Operator-given header values: what RFC 9110 / RFC 7617 let Tidings send, and how the stream
model applies it (refused from the API and files, tolerated in stored records)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dispatcher.http_fields import (
    basic_password_problem,
    basic_username_problem,
    field_name_problem,
    field_value_problem,
)
from dispatcher.streams import WebhookConfiguration

FORBIDDEN_VALUES = [
    ("tok\r\nX-Injected: 1", "line break"),
    ("tok\n", "line break"),
    ("tok\r", "line break"),
    ("a\x00b", "control character"),
    ("a\x7fb", "control character"),
    ("a\x0bb", "control character"),
    ("tökén", "non-ASCII"),
    ("tok\u2028en", "non-ASCII"),
    (" tok", "leading or trailing space"),
    ("tok\t", "leading or trailing space"),
]


@pytest.mark.parametrize(("value", "why"), FORBIDDEN_VALUES)
def test_forbidden_field_values_are_named_without_quoting(value: str, why: str) -> None:
    """A value HTTP cannot carry is refused with the kind of character, never the value."""
    problem = field_value_problem(value)
    assert problem is not None
    assert why in problem
    assert value.strip() not in problem


@pytest.mark.parametrize(
    "value", ["abc", "Bearer abc.def", "a b\tc", "x" * 4000, "!#$%&'*+-.^_`|~\"(),/:;<=>?@[]{}"]
)
def test_visible_ascii_with_inner_spaces_is_a_field_value(value: str) -> None:
    """Visible ASCII, with spaces or tabs between visible characters, may be sent."""
    assert field_value_problem(value) is None


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("X-Api-Key", True),
        ("x_k.e~y!", True),
        ("X-Key\n", False),
        ("X Key", False),
        ("X-Key:", False),
        ("Ключ", False),
        ("", False),
    ],
)
def test_field_names_are_tokens(name: str, allowed: bool) -> None:
    """A header name is an RFC 9110 token; a trailing newline is not one (``re.match`` with
    ``$`` used to let it through)."""
    assert (field_name_problem(name) is None) is allowed


def test_basic_credentials_follow_rfc_7617() -> None:
    """User ids have no colon; neither part has a control character; non-ASCII is fine
    (basic credentials travel base64-encoded)."""
    assert basic_username_problem("ann") is None
    assert basic_username_problem("änn") is None
    assert basic_username_problem("a:b") is not None
    assert basic_username_problem("a\nb") is not None
    assert basic_password_problem("p:ä ss") is None
    assert basic_password_problem("p\r\n") is not None


def _webhook(auth: dict[str, Any]) -> dict[str, Any]:
    return {"webhook_endpoint": "https://example.com/h", "webhook_authorization": auth}


BAD_AUTHORIZATIONS = [
    ({"method": "bearer", "token": "t\r\nX-Evil: 1"}, "token"),
    ({"method": "basic", "username": "a:b", "password": "p"}, "username"),
    ({"method": "basic", "username": "a", "password": "p\n"}, "password"),
    ({"method": "custom_header", "header_key": "X-Key\n", "header_value": "v"}, "header_key"),
    ({"method": "custom_header", "header_key": "X-Key", "header_value": "v\r\n"}, "header_value"),
]


@pytest.mark.parametrize(("auth", "field"), BAD_AUTHORIZATIONS)
def test_given_values_are_refused_stored_values_are_kept(auth: dict[str, Any], field: str) -> None:
    """Input naming the field is refused; a stored record with the same value still loads, and
    reports the same field as unsendable (the webhook client dead-letters on it)."""
    with pytest.raises(ValidationError) as caught:
        WebhookConfiguration.model_validate(_webhook(auth))
    assert caught.value.errors()[0]["loc"][-1] == field
    stored = WebhookConfiguration.model_validate(_webhook(auth), context={"stored": True})
    assert stored.webhook_authorization is not None
    problem = stored.webhook_authorization.header_problem()
    assert problem is not None
    assert problem[0] == field
