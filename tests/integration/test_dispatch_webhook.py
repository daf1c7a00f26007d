"""Webhook delivery through the real broker to a real receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac

from standardwebhooks import Webhook

from auth0_catalog import problems
from dispatch_kit import produce_events, register, running_dispatcher, webhook_stream
from dispatcher.signing import generate_secret
from producer.config import Settings
from receiver import Receiver
from schemas import constants


async def test_every_event_type_arrives_as_auth0_cloudevent(
    settings: Settings, receiver: Receiver
) -> None:
    """Each lifecycle type is POSTed once as CloudEvents JSON valid against Auth0's Event
    Catalog schema, with the event id as webhook-id; a stream subscribed to user.* gets only
    user events."""
    everything, _users = register(
        settings,
        webhook_stream(receiver.url("all")),
        webhook_stream(receiver.url("users"), types=["user.*"]),
    )
    async with running_dispatcher(settings):
        ids = produce_events(settings, len(constants.EVENT_TYPES))
        await receiver.wait_until(
            lambda: (
                len(receiver.delivered_ids("all")) == len(ids)
                and len(receiver.delivered_ids("users")) == 3
            )
        )
    by_type = {r.json["type"]: r for r in receiver.delivered("all")}
    assert set(by_type) == set(constants.EVENT_TYPES)
    assert receiver.delivered_ids("all") == set(ids)
    for event_type, request in by_type.items():
        body = request.json
        assert body["specversion"] == "1.0"
        assert body["id"].startswith("evt_")
        assert len(body["id"]) == 26
        assert body["a0stream"] == everything.id
        assert body["a0tenant"] == settings.tenant
        assert body["time"].endswith("Z")
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["webhook-id"] == body["id"]
        assert "webhook-signature" not in request.headers, "no secret, no signature"
        assert problems(body) == [], (event_type, "breaks Auth0's Event Catalog schema")
        if event_type.startswith("user."):
            obj = body["data"]["object"]
            for key in ("user_id", "email", "name", "nickname", "created_at", "updated_at"):
                assert key in obj, (event_type, key)
    assert {r.json["type"] for r in receiver.delivered("users")} == {
        "user.created",
        "user.updated",
        "user.deleted",
    }
    assert len(receiver.requests) == len(ids) + 3, "each event delivered exactly once"


async def test_authorization_kinds(settings: Settings, receiver: Receiver) -> None:
    """Bearer, basic and custom-header authorization reach the receiver as configured."""
    register(
        settings,
        webhook_stream(
            receiver.url("bearer"),
            configuration={"webhook_authorization": {"method": "bearer", "token": "tok-123"}},
        ),
        webhook_stream(
            receiver.url("basic"),
            configuration={
                "webhook_authorization": {"method": "basic", "username": "ann", "password": "pw"}
            },
        ),
        webhook_stream(
            receiver.url("custom"),
            configuration={
                "webhook_authorization": {
                    "method": "custom_header",
                    "header_key": "X-Api-Key",
                    "header_value": "k-9",
                }
            },
        ),
    )
    async with running_dispatcher(settings):
        produce_events(settings, 1)
        await receiver.wait_until(lambda: len(receiver.delivered()) == 3)
    headers = {r.path: r.headers for r in receiver.delivered()}
    assert headers["bearer"]["Authorization"] == "Bearer tok-123"
    assert headers["basic"]["Authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()
    assert headers["custom"]["X-Api-Key"] == "k-9"
    assert "Authorization" not in headers["custom"]


async def test_signatures_verify_with_every_active_secret(
    settings: Settings, receiver: Receiver
) -> None:
    """With two signing secrets (rotation), webhook-signature carries a valid v1 signature
    for each, computed as Standard Webhooks specifies over id.timestamp.body."""
    old, new = generate_secret(), generate_secret()
    register(settings, webhook_stream(receiver.url(), signing_secrets=[old, new]))
    async with running_dispatcher(settings):
        produce_events(settings, 2)
        await receiver.wait_until(lambda: len(receiver.delivered()) == 2)
    for request in receiver.delivered():
        msg_id = request.headers["webhook-id"]
        timestamp = request.headers["webhook-timestamp"]
        signed = f"{msg_id}.{timestamp}.".encode() + request.body
        signatures = request.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2
        for secret, signature in zip((old, new), signatures, strict=True):
            key = base64.b64decode(secret.removeprefix("whsec_"))
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            assert signature == f"v1,{expected}"
        # The reference verifier published as `standardwebhooks`, not our own code.
        for secret in (old, new):
            Webhook(secret).verify(request.body, request.headers)


async def test_refused_endpoints_are_dead_lettered_not_called(
    settings: Settings, receiver: Receiver
) -> None:
    """Without an allowlist entry, a plain-http loopback endpoint and an https name that
    resolves to loopback (checked at connection time) are never called: dead-lettered."""
    from dispatch_kit import headers_of
    from kafka_testkit import aread_topic

    strict = settings.model_copy(update={"destination_allowlist": []})
    register(
        strict,
        webhook_stream(receiver.url("literal")),
        webhook_stream(f"https://localhost:{receiver.port}/dns"),
    )
    async with running_dispatcher(strict):
        produce_events(strict, 1)
        dead = await aread_topic(strict, strict.dlq_topic, 2, timeout=15)
    reasons = sorted(headers_of(m)[constants.HEADER_DLQ_REASON] for m in dead)
    assert all("destination refused" in r for r in reasons), reasons
    assert any("http://" in r for r in reasons)
    assert any("non-public" in r for r in reasons)
    assert receiver.requests == []


async def test_an_event_near_the_size_limit_is_delivered(
    settings: Settings, receiver: Receiver
) -> None:
    """An event of about 900 KB (under the producer's 1 MB limit, over the consumers' fetch
    sizes per partition) is fetched and delivered intact."""
    from producer.producer import EventProducer
    from schemas.samples import sample_object

    register(settings, webhook_stream(receiver.url()))
    user = sample_object("user.created", seed=7)
    user["user_metadata"] = {"blob": "x" * 900_000}
    async with running_dispatcher(settings):
        with EventProducer(settings) as producer:
            event_id = producer.user_created(user)
            assert producer.flush(30) == 0
        await receiver.wait_until(lambda: receiver.delivered_ids() == {event_id})
    body = receiver.delivered()[0].json
    assert len(body["data"]["object"]["user_metadata"]["blob"]) == 900_000
