"""Tests for dispatcher.eventbridge's pure parts: the PutEvents entry, its size, the bus ARN."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dispatcher.eventbridge import (
    MAX_ENTRY_BYTES,
    Entry,
    build_entry,
    entry_size,
    event_bus_arn,
    oversized,
)
from dispatcher.outcome import OutcomeKind
from dispatcher.streams import EventBridgeConfiguration
from schemas.cloudevents import render_cloudevent_json
from schemas.samples import sample_event

BUS = "arn:aws:events:eu-west-1:123456789012:event-bus/tidings"


def test_entry_carries_the_cloudevent_unchanged() -> None:
    """Source is tidings.<tenant>, DetailType the type, Detail the exact JSON, Time the
    event time, EventBusName the bus."""
    event = sample_event("organization.member.added", tenant="acme", seed=3)
    body = render_cloudevent_json(event, stream_id="est_" + "a" * 22)
    entry = build_entry(body, event_bus=BUS)
    assert entry.to_api() == {
        "Source": "tidings.acme",
        "DetailType": "organization.member.added",
        "Detail": body.decode(),
        "EventBusName": BUS,
        "Time": event.time,
    }
    assert entry.time == event.time
    assert entry.time.tzinfo is not None


def test_configured_source_wins_over_the_tenant() -> None:
    """A stream's own ``source`` replaces the tidings.<tenant> default."""
    body = render_cloudevent_json(sample_event("user.created", tenant="acme", seed=1))
    assert build_entry(body, event_bus=BUS, source="com.example.identity").source == (
        "com.example.identity"
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "Expecting value"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"a0tenant": "acme"}', "no type"),
        (b'{"type": "user.created"}', "no a0tenant"),
        (b"\xff\xfe", "utf-8"),
    ],
)
def test_a_body_that_is_no_cloudevent_is_refused(body: bytes, problem: str) -> None:
    """build_entry raises ValueError saying what is missing."""
    with pytest.raises(ValueError, match=problem):
        build_entry(body, event_bus=BUS)


def _entry(**fields: object) -> Entry:
    base: dict[str, object] = {
        "source": "tidings.acme",
        "detail_type": "user.created",
        "detail": "{}",
        "time": None,
        "event_bus_name": BUS,
    }
    return Entry(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({}, 12 + 12 + 2),
        ({"time": datetime(2026, 1, 1, tzinfo=UTC)}, 14 + 12 + 12 + 2),
        ({"detail": '{"name":"Søren"}'}, 12 + 12 + 17),  # ø is two bytes in UTF-8
        ({"resources": ("arn:a", "arn:bc")}, 12 + 12 + 2 + 5 + 6),
        ({"event_bus_name": "x" * 5000}, 12 + 12 + 2),  # the bus does not count
    ],
)
def test_entry_size_counts_as_aws_documents(fields: dict[str, object], size: int) -> None:
    """Time is 14 bytes; Source, DetailType, Detail and each resource their UTF-8 bytes."""
    assert entry_size(_entry(**fields)) == size


def test_oversized_outcome_is_permanent_and_names_the_limit() -> None:
    """An entry over 256 KiB is dead-lettered with a reason a customer understands."""
    outcome = oversized(MAX_ENTRY_BYTES + 1)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.error is not None
    assert str(MAX_ENTRY_BYTES + 1) in outcome.error
    assert "256 KiB" in outcome.error


@pytest.mark.parametrize(
    ("region", "bus", "arn"),
    [
        ("eu-west-1", "tidings", "arn:aws:events:eu-west-1:123456789012:event-bus/tidings"),
        ("cn-north-1", "b", "arn:aws-cn:events:cn-north-1:123456789012:event-bus/b"),
        ("us-gov-west-1", "b", "arn:aws-us-gov:events:us-gov-west-1:123456789012:event-bus/b"),
        ("eu-west-1", BUS.replace("tidings", "given"), BUS.replace("tidings", "given")),
    ],
)
def test_bus_is_addressed_by_arn_in_the_configured_account(region: str, bus: str, arn: str) -> None:
    """A bus name becomes an ARN in the stream's account and region; an ARN stays."""
    config = EventBridgeConfiguration(
        aws_account_id="123456789012", aws_region=region, event_bus_name=bus
    )
    assert event_bus_arn(config) == arn


@pytest.mark.parametrize(
    "field", ["aws_access_key_id", "aws_secret_access_key", "aws_session_token"]
)
def test_credentials_have_no_place_in_the_configuration(field: str) -> None:
    """Credentials come from the AWS chain: the stream configuration refuses them."""
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        EventBridgeConfiguration.model_validate(
            {
                "aws_account_id": "123456789012",
                "aws_region": "eu-west-1",
                "event_bus_name": "tidings",
                field: "AKIAEXAMPLE",
            }
        )


def test_detail_is_the_delivered_json_object() -> None:
    """Detail parses back to the CloudEvent (EventBridge requires a JSON object)."""
    event = sample_event("user.deleted", tenant="acme", seed=2)
    body = render_cloudevent_json(event)
    assert json.loads(build_entry(body, event_bus=BUS).detail) == json.loads(body)
