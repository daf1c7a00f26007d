"""Tests for admin.apply's file handling: environment interpolation and validation."""

from __future__ import annotations

import json

import pytest

from admin.apply import interpolate, load_file
from admin.cli import CliError
from dispatcher.signing import generate_secret

SIGNING = generate_secret()
ENV = {"CRM_TOKEN": "tok-Zq81", "CRM_SIGNING": SIGNING, "HOST": "crm.example.com"}

FILE = """
streams:
  - name: crm
    subscriptions: [{event_type: "user.*"}]
    destination:
      type: webhook
      configuration:
        webhook_endpoint: https://${HOST}/hook
        webhook_authorization: {method: bearer, token: "${CRM_TOKEN}"}
    signing_secrets: ["${CRM_SIGNING}"]
    delivery: {timeout: 5s}
  - name: audit
    subscriptions: [{event_type: "*"}]
    destination: {type: webhook, configuration: {webhook_endpoint: "https://audit.example.com"}}
    status: disabled
"""


def test_interpolation_replaces_variables_in_every_string() -> None:
    """``${VAR}`` is replaced in nested strings; ``$$`` is a literal dollar; other values and
    lone dollars are kept."""
    tree = {"a": ["x-${HOST}-y", {"b": "${CRM_TOKEN}"}], "n": 5, "c": "$$5 and $HOST and $"}
    assert interpolate(tree, ENV) == {
        "a": ["x-crm.example.com-y", {"b": "tok-Zq81"}],
        "n": 5,
        "c": "$5 and $HOST and $",
    }


def test_an_unset_variable_names_its_place() -> None:
    """An unset variable is an error naming the variable and where it is used."""
    with pytest.raises(CliError, match=r"streams\[0\]\.token: the environment variable X is not"):
        interpolate({"token": "${X}"}, {}, "streams[0]")


def test_a_file_loads_into_validated_streams_with_secrets_from_the_environment() -> None:
    """The secrets come from the environment into the request body, never into the public
    form that is compared; omitted fields take their defaults."""
    desired = load_file(FILE, ENV)
    assert [s.name for s in desired.streams] == ["crm", "audit"]
    assert desired.prune is False
    crm = desired.streams[0]
    body = crm.body()
    assert (
        body["destination"]["configuration"]["webhook_endpoint"] == "https://crm.example.com/hook"
    )
    assert body["destination"]["configuration"]["webhook_authorization"]["token"] == "tok-Zq81"
    assert body["signing_secrets"] == [SIGNING]
    assert body["delivery"]["timeout"] == "5s"
    assert "tok-Zq81" not in str(crm.public())
    assert SIGNING not in str(crm.public())
    assert crm.public()["signing_secrets_count"] == 1
    assert crm.secrets() == ["the bearer token", "1 signing secret"]
    assert desired.streams[1].body()["status"] == "disabled"
    assert desired.streams[1].body()["delivery"]["max_in_flight"] == 64
    assert desired.streams[1].secrets() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("streams: [{name: a, subscriptions: [{event_type: 'user.*'}]}]", r"streams\[0\] \(a\): "),
        (
            FILE.replace("status: disabled", "colour: red"),
            r"streams\[1\] \(audit\): unknown field \(field: colour\)",
        ),
        (
            FILE.replace("https://audit.example.com", "ftp://audit"),
            r"streams\[1\] \(audit\): .*\(field: destination\.configuration\.webhook_endpoint\)",
        ),
        (
            FILE.replace("${CRM_TOKEN}", "${CRM_TOKEN}\\r\\nX-Injected: 1"),
            r"streams\[0\] \(crm\): cannot be sent in an HTTP header: it contains a line break "
            r"\(CR or LF\) \(field: destination\.configuration\.webhook_authorization\.token\)",
        ),
        (FILE.replace("name: audit", "name: crm"), "the name 'crm' is given twice"),
        ("streams: {}", "streams: must be a list"),
        ("- name: a", "must be a mapping with a `streams` list"),
        ("stream: []", "unknown top-level key 'stream'"),
        ("prune: yes please\nstreams: []", "prune: must be true or false"),
        ("streams: [1]", r"streams\[0\]: each stream must be a mapping"),
        ("streams: [", "not valid YAML"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_place(text: str, message: str) -> None:
    """A file that cannot be applied is refused as a whole, naming the stream and field."""
    with pytest.raises(CliError, match=message) as caught:
        load_file(text, ENV)
    assert "\n" not in str(caught.value)
    assert ENV["CRM_TOKEN"] not in str(caught.value)


def test_prune_can_be_asked_for_in_the_file() -> None:
    """``prune: true`` in the file turns pruning on."""
    assert load_file("prune: true\nstreams: []", {}).prune is True


def test_bodies_are_plain_json_even_for_yaml_timestamps() -> None:
    """YAML reads an unquoted time as a datetime; the body sent still is plain JSON."""
    text = FILE.replace(
        "delivery: {timeout: 5s}", "delivery: {start_position: 2026-05-01T00:00:00Z}"
    )
    crm = load_file(text, ENV).streams[0]
    body = json.loads(json.dumps(crm.body()))
    assert body["delivery"]["start_position"] == "2026-05-01T00:00:00Z"
    assert body["delivery"]["timeout"] == "10s", "an omitted delivery key is its default"
