"""The admin API applies the outbound policy when a stream is created or changed: the
URL as the HTTP client reads it, then every address its host resolves to (webhooks and
EventBridge ``endpoint_url`` alike)."""

from __future__ import annotations

from typing import Any

from admin_kit import start_api
from producer.config import Settings

WEBHOOK = "destination.configuration.webhook_endpoint"


def webhook(url: str) -> dict[str, Any]:
    """A stream body for a webhook at ``url``."""
    return {
        "name": "hook",
        "subscriptions": [{"event_type": "*"}],
        "destination": {"type": "webhook", "configuration": {"webhook_endpoint": url}},
    }


def eventbridge(endpoint_url: str) -> dict[str, Any]:
    """A stream body for an EventBridge bus at ``endpoint_url``."""
    return {
        "name": "bus",
        "subscriptions": [{"event_type": "*"}],
        "destination": {
            "type": "eventbridge",
            "configuration": {
                "aws_account_id": "123456789012",
                "aws_region": "us-east-1",
                "event_bus_name": "tidings",
                "endpoint_url": endpoint_url,
            },
        },
    }


async def test_names_resolving_to_forbidden_addresses_are_refused_at_creation(
    settings: Settings,
) -> None:
    """Without an allowlist entry, a name resolving to loopback is a 400 naming the field,
    and an EventBridge endpoint_url is under the same policy."""
    strict = settings.model_copy(update={"destination_allowlist": []})
    client, api = await start_api(strict)
    try:
        status, body = await api.call("POST", "/v1/event-streams", webhook("https://localhost/h"))
        assert (status, body["field"]) == (400, WEBHOOK), body
        assert "127.0.0.1" in body["message"]
        assert "non-public" in body["message"]
        for url, why in (
            ("https://localhost/events", "non-public"),
            ("https://169.254.169.254/", "non-public"),
            ("https://[::ffff:a9fe:a9fe]/", "non-public"),
            ("http://events.example.com/", "http:// is not allowed"),
        ):
            status, body = await api.call("POST", "/v1/event-streams", eventbridge(url))
            assert status == 400, (url, body)
            assert body["field"] == "destination.configuration.endpoint_url", body
            assert why in body["message"], (url, body)
    finally:
        await client.close()


async def test_a_name_that_does_not_resolve_yet_may_be_prepared_disabled(
    settings: Settings,
) -> None:
    """An enabled stream whose host has no address is a 400 saying so (every delivery would
    fail); the same stream may be created disabled, and enabling it runs the check again."""
    client, api = await start_api(settings)
    try:
        url = "https://hooks.tidings-test.invalid/h"
        status, body = await api.call("POST", "/v1/event-streams", webhook(url))
        assert (status, body["field"]) == (400, WEBHOOK), body
        assert "does not resolve" in body["message"]
        assert '"status": "disabled"' in body["message"]
        stream = await api.create(url, status="disabled")
        assert stream["status"] == "disabled"
        path = f"/v1/event-streams/{stream['id']}"
        status, body = await api.call("PATCH", path, {"status": "enabled"})
        assert (status, body["field"]) == (400, WEBHOOK), body
        status, body = await api.call("PATCH", path, {"name": "renamed"})
        assert status == 200, body
    finally:
        await client.close()


async def test_the_stored_url_is_the_one_the_client_calls(settings: Settings) -> None:
    """Other notations of a host are stored as the HTTP client reads them (so what the API
    shows is what is called); backslashes and control characters are refused."""
    client, api = await start_api(settings)
    try:
        for given, stored in (
            ("https://0x7f.0.0.1/h", "https://127.0.0.1/h"),
            ("https://2130706433:443/h", "https://127.0.0.1/h"),
            ("https://%31%32%37.0.0.1/h", "https://127.0.0.1/h"),
            ("HTTPS://127.0.0.1/a%2Fb?x=1", "https://127.0.0.1/a%2Fb?x=1"),
        ):
            stream = await api.create(given)
            shown = stream["destination"]["configuration"]["webhook_endpoint"]
            assert shown == stored, given
        for given in ("https://127.0.0.1\\@example.com/", "https://127.0.0.1/a\nb"):
            status, body = await api.call("POST", "/v1/event-streams", webhook(given))
            assert (status, body["field"]) == (400, WEBHOOK), body
    finally:
        await client.close()


async def test_ordering_per_subject_is_offered_for_webhooks_only(settings: Settings) -> None:
    """A webhook stream may ask for ordering per subject; an EventBridge stream is refused
    with a 400 naming delivery.ordering and why (EventBridge routes events without an order),
    at creation and when changed."""
    client, api = await start_api(settings)
    try:
        ordered = {"delivery": {"ordering": "subject"}}
        status, body = await api.call(
            "POST", "/v1/event-streams", {**webhook("https://127.0.0.1/h"), **ordered}
        )
        assert (status, body["delivery"]["ordering"]) == (201, "subject"), body
        bus = eventbridge("https://127.0.0.1/events")
        status, body = await api.call("POST", "/v1/event-streams", {**bus, **ordered})
        assert (status, body["field"]) == (400, "delivery.ordering"), body
        assert "webhook destinations only" in body["message"]
        status, created = await api.call("POST", "/v1/event-streams", bus)
        assert (status, created["delivery"]["ordering"]) == (201, "none"), created
        path = f"/v1/event-streams/{created['id']}"
        status, body = await api.call("PATCH", path, ordered)
        assert (status, body["field"]) == (400, "delivery.ordering"), body
    finally:
        await client.close()
