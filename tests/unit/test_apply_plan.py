"""Tests for admin.apply's plan: what apply creates, updates and deletes, and which secrets
it sends, comparing a file with the streams as the API shows them."""

from __future__ import annotations

from typing import Any

import pytest

from admin.api.models import StreamOut
from admin.apply import DesiredFile, load_file, plan
from admin.cli import CliError
from dispatcher.signing import generate_secret

ENV = {"TOKEN": "tok-Zq81", "SIGNING": generate_secret()}

FILE = """
streams:
  - name: crm
    subscriptions: [{event_type: "user.*"}, {event_type: organization.created}]
    destination:
      type: webhook
      configuration:
        webhook_endpoint: https://crm.example.com/hook
        webhook_authorization: {method: bearer, token: "${TOKEN}"}
    signing_secrets: ["${SIGNING}"]
  - name: audit
    subscriptions: [{event_type: "*"}]
    destination: {type: webhook, configuration: {webhook_endpoint: "https://audit.example.com"}}
"""


def desired(text: str = FILE) -> DesiredFile:
    return load_file(text, ENV)


def live(text: str = FILE) -> list[dict[str, Any]]:
    """The streams of ``text`` as the API would list them (ids, times, no secrets)."""
    return [StreamOut.of(s.stream).model_dump(mode="json") for s in desired(text).streams]


def test_missing_streams_are_created_with_their_secrets() -> None:
    """Streams absent from the API are created with the full body, secrets included, and
    the line says which secrets were sent and that they are not compared later."""
    result = plan(desired(), [])
    assert [(c.action, c.name) for c in result.changes] == [("create", "crm"), ("create", "audit")]
    crm = result.changes[0]
    assert crm.body["destination"]["configuration"]["webhook_authorization"]["token"] == "tok-Zq81"
    assert crm.lines() == [
        "+ create crm: sends the bearer token, 1 signing secret (write-only: later applies "
        "send them only with --rotate-secrets)"
    ]
    assert result.changes[1].lines() == ["+ create audit"]
    assert "tok-Zq81" not in repr(crm)
    assert "tok-Zq81" not in str(crm.to_json())


def test_matching_streams_are_left_alone_and_unsent_secrets_are_noted() -> None:
    """When every compared field matches (subscription order aside) nothing changes; the
    streams whose secrets could not be compared are named."""
    current = live()
    current[0]["subscriptions"].reverse()
    result = plan(desired(), current)
    assert result.changes == []
    assert result.unchanged == ["crm", "audit"]
    assert result.secrets_not_sent == ["crm"]


def test_a_changed_field_is_one_patch_of_that_field_only() -> None:
    """A differing status and timeout make one update whose body carries exactly those
    fields (no secrets), shown as ``field: old -> new`` lines."""
    changed = FILE.replace(
        'webhook_endpoint: "https://audit.example.com"}}',
        'webhook_endpoint: "https://audit.example.com"}}\n'
        "    status: disabled\n    delivery: {timeout: 5s}",
    )
    current = live()
    result = plan(desired(changed), current)
    assert [(c.action, c.name) for c in result.changes] == [("update", "audit")]
    update = result.changes[0]
    assert update.stream_id == current[1]["id"]
    assert set(update.body) == {"status", "delivery"}
    assert update.body["delivery"]["timeout"] == "5s"
    assert update.lines() == [
        "~ update audit: status: enabled -> disabled",
        "~ update audit: delivery.timeout: 10s -> 5s",
    ]
    assert update.secrets == ()


def test_a_destination_change_sends_its_secret_again_and_says_so() -> None:
    """The API replaces a destination as a whole, so changing the endpoint sends the token
    again; the output says so."""
    changed = FILE.replace("crm.example.com/hook", "crm.example.com/v2")
    update = plan(desired(changed), live()).changes[0]
    assert set(update.body) == {"destination"}
    assert update.body["destination"]["configuration"]["webhook_authorization"] == {
        "method": "bearer",
        "token": "tok-Zq81",
    }
    assert update.lines() == [
        "~ update crm: destination.configuration.webhook_endpoint: "
        "https://crm.example.com/hook -> https://crm.example.com/v2",
        "~ update crm: sends the bearer token (the API replaces these fields as a whole)",
    ]


def test_an_authorization_change_is_seen_without_reading_the_secret() -> None:
    """Switching bearer to basic is visible in the public form (method, username)."""
    changed = FILE.replace(
        '{method: bearer, token: "${TOKEN}"}', "{method: basic, username: u, password: p}"
    )
    update = plan(desired(changed), live()).changes[0]
    assert (
        "~ update crm: destination.configuration.webhook_authorization.method: bearer -> basic"
        in (update.lines())
    )
    assert update.secrets == ("the basic password",)


def test_rotate_secrets_sends_every_secret_of_the_file() -> None:
    """With ``rotate_secrets`` a matching stream with secrets gets a PATCH of its
    destination and signing secrets; one without secrets is left alone."""
    result = plan(desired(), live(), rotate_secrets=True)
    assert [(c.action, c.name) for c in result.changes] == [("update", "crm")]
    update = result.changes[0]
    assert set(update.body) == {"destination", "signing_secrets"}
    assert update.body["signing_secrets"] == [ENV["SIGNING"]]
    assert update.lines() == [
        "~ update crm: sends the bearer token, 1 signing secret (--rotate-secrets)"
    ]
    assert result.secrets_not_sent == []


def test_a_different_number_of_signing_secrets_is_a_change() -> None:
    """The count of signing secrets is public, so adding one is seen and sends them all."""
    current = live()
    current[0]["signing_secrets_count"] = 2
    update = plan(desired(), current).changes[0]
    assert update.lines()[0] == "~ update crm: signing_secrets: 2 -> 1"
    assert set(update.body) == {"signing_secrets"}


@pytest.mark.parametrize("how", ["option", "file"])
def test_streams_not_in_the_file_are_deleted_only_when_pruning(how: str) -> None:
    """An extra stream is kept by default and deleted with prune (option or file)."""
    current = live(FILE.replace("name: audit", "name: old"))
    assert [c.action for c in plan(desired(), current).changes] == ["create"]
    text = "prune: true\n" + FILE if how == "file" else FILE
    result = plan(desired(text), current, prune=how == "option")
    deletion = next(c for c in result.changes if c.action == "delete")
    assert deletion.lines() == [f"- delete old ({current[1]['id']})"]
    assert [(c.action, c.name) for c in result.changes] == [("create", "audit"), ("delete", "old")]


def test_two_live_streams_with_a_name_of_the_file_are_refused() -> None:
    """Names are the key: a name held by two streams cannot be applied."""
    current = live() + live()[:1]
    with pytest.raises(CliError, match="two streams are named 'crm'"):
        plan(desired(), current)
