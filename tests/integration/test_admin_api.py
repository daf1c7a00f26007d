"""The admin API's HTTP surface against the real broker: auth, CRUD, validation errors,
404s, the OpenAPI document, write-only secrets, and fuzzed input that must never be a 500.

The :class:`Api` client lives in ``tests/admin_kit.py``, shared with the other admin tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from admin.api.app import ROUTES
from admin.api.models import StreamOut
from admin.dashboard import PATHS as DASHBOARD_PATHS
from admin_kit import ANON, SECRETS, TOKEN, UNKNOWN_ID, Api, start_api
from producer.config import Settings


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """A ready admin API on fresh topics, at most 3 streams; secrets are checked at the end."""
    client, api = await start_api(settings, max_streams=3)
    try:
        yield api
        api.assert_no_secret_leaked()
    finally:
        await client.close()


def full_stream(url: str = "https://127.0.0.1/hook") -> dict[str, Any]:
    """A stream body using every kind of secret."""
    return {
        "name": "full",
        "subscriptions": [{"event_type": "user.*"}],
        "destination": {
            "type": "webhook",
            "configuration": {
                "webhook_endpoint": url,
                "webhook_authorization": {"method": "bearer", "token": SECRETS["bearer"]},
            },
        },
        "delivery": {"timeout": "5s", "retry_schedule": ["1s"]},
        "signing_secrets": [SECRETS["signing"]],
    }


def concrete(path: str, stream_id: str, event_id: str = "evt_0000000000000000000000") -> str:
    return path.replace("{id}", stream_id).replace("{event_id}", event_id)


async def test_every_route_but_the_health_checks_needs_the_token(api: Api) -> None:
    """401 without a token (or with another scheme), 403 with a wrong one, on every route."""
    stream = await api.create("https://127.0.0.1/h")
    for route in ROUTES:
        path = concrete(route.path, stream["id"])
        if not route.auth:
            assert (await api.call(route.method, path, token=ANON))[0] in (200, 503)
            continue
        status, body = await api.call(route.method, path, token=ANON)
        assert (status, body["code"]) == (401, "unauthorized"), path
        status, _ = await api.call(route.method, path, token=TOKEN[:-1] + "X")
        assert status == 403, path
        response = await api.client.request(
            route.method, path, headers={"Authorization": f"Basic {TOKEN}"}
        )
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_create_get_list_patch_delete(api: Api) -> None:
    """The CRUD cycle: 201, read-your-writes GET, list, PATCH merge, DELETE 204, then 404."""
    status, created = await api.call("POST", "/v1/event-streams", full_stream())
    assert status == 201
    StreamOut.model_validate(created)
    assert created["id"].startswith("est_")
    assert created["signing_secrets_count"] == 1
    assert created["destination"]["configuration"]["webhook_authorization"] == {"method": "bearer"}
    assert created["delivery"]["retry_schedule"] == ["1s"]
    path = f"/v1/event-streams/{created['id']}"
    assert await api.ok("GET", path) == created

    patched = await api.ok(
        "PATCH", path, {"name": "renamed", "status": "disabled", "delivery": {"timeout": "2s"}}
    )
    assert (patched["name"], patched["status"]) == ("renamed", "disabled")
    assert patched["delivery"]["timeout"] == "2s"
    assert patched["delivery"]["retry_schedule"] == ["1s"], "delivery keys are merged"
    assert patched["signing_secrets_count"] == 1, "secrets not given are kept"
    assert patched["created_at"] == created["created_at"]
    assert patched["updated_at"] > created["updated_at"]
    assert await api.ok("GET", path) == patched

    listed = await api.ok("GET", "/v1/event-streams")
    assert [s["id"] for s in listed["event_streams"]] == [created["id"]]
    assert listed["next"] is None

    assert await api.call("DELETE", path) == (204, None)
    assert (await api.call("GET", path))[0] == 404
    assert (await api.ok("GET", "/v1/event-streams"))["event_streams"] == []


async def test_patch_replaces_the_destination_whole(api: Api) -> None:
    """A new destination replaces the old one, authorization included."""
    created = await api.create(
        "https://127.0.0.1/a",
        destination={
            "type": "webhook",
            "configuration": {
                "webhook_endpoint": "https://127.0.0.1/a",
                "webhook_authorization": {
                    "method": "basic",
                    "username": "u",
                    "password": SECRETS["password"],
                },
            },
        },
    )
    assert created["destination"]["configuration"]["webhook_authorization"] == {
        "method": "basic",
        "username": "u",
    }
    destination = {
        "type": "webhook",
        "configuration": {
            "webhook_endpoint": "https://127.0.0.1/b",
            "webhook_authorization": {
                "method": "custom_header",
                "header_key": "X-Key",
                "header_value": SECRETS["header"],
            },
        },
    }
    patched = await api.ok(
        "PATCH", f"/v1/event-streams/{created['id']}", {"destination": destination}
    )
    assert patched["destination"]["configuration"] == {
        "webhook_endpoint": "https://127.0.0.1/b",
        "webhook_authorization": {"method": "custom_header", "header_key": "X-Key"},
    }


async def test_streams_page_with_cursors_and_the_limit_answers_409(api: Api) -> None:
    """Three streams page as 2 + 1 in creation order; a fourth is over the limit (409);
    a stream created disabled is fine."""
    ids = [(await api.create("https://e.com/x", status="disabled"))["id"] for _ in range(3)]
    status, body = await api.call("POST", "/v1/event-streams", full_stream())
    assert (status, body["code"]) == (409, "too_many_streams")
    first = await api.ok("GET", "/v1/event-streams", params={"take": "2"})
    second = await api.ok("GET", "/v1/event-streams", params={"take": "2", "from": first["next"]})
    assert [s["id"] for s in first["event_streams"] + second["event_streams"]] == ids
    assert second["next"] is None
    assert {s["status"] for s in first["event_streams"]} == {"disabled"}


#: (method, path, body or query, field named by the 400)
BAD_INPUT: list[tuple[str, str, Any, str | None]] = [
    ("POST", "/v1/event-streams", {}, "name"),
    ("POST", "/v1/event-streams", {**full_stream(), "name": ""}, "name"),
    ("POST", "/v1/event-streams", {**full_stream(), "name": "x" * 129}, "name"),
    ("POST", "/v1/event-streams", {**full_stream(), "subscriptions": []}, "subscriptions"),
    (
        "POST",
        "/v1/event-streams",
        {**full_stream(), "subscriptions": [{"event_type": "customer.*"}]},
        "subscriptions.0.event_type",
    ),
    (
        "POST",
        "/v1/event-streams",
        {**full_stream(), "destination": {"type": "sqs", "configuration": {}}},
        "destination",
    ),
    (
        "POST",
        "/v1/event-streams",
        {**full_stream("ftp://example.com")},
        "destination.configuration.webhook_endpoint",
    ),
    (
        "POST",
        "/v1/event-streams",
        {
            **full_stream(),
            "destination": {
                "type": "webhook",
                "configuration": {
                    "webhook_endpoint": "https://e.com",
                    "webhook_authorization": {"method": "bearer", "token": ""},
                },
            },
        },
        "destination.configuration.webhook_authorization.token",
    ),
    (
        "POST",
        "/v1/event-streams",
        full_stream("https://169.254.169.254/latest/meta-data"),
        "destination.configuration.webhook_endpoint",
    ),
    (
        "POST",
        "/v1/event-streams",
        full_stream("http://example.com/plain"),
        "destination.configuration.webhook_endpoint",
    ),
    (
        "PATCH",
        "/v1/event-streams/{id}",
        {"destination": full_stream("https://10.1.2.3/internal")["destination"]},
        "destination.configuration.webhook_endpoint",
    ),
    *(
        (
            method,
            path,
            {
                **(full_stream() if method == "POST" else {}),
                "destination": {
                    "type": "webhook",
                    "configuration": {
                        "webhook_endpoint": "https://127.0.0.1/h",
                        "webhook_authorization": auth,
                    },
                },
            },
            f"destination.configuration.webhook_authorization.{field}",
        )
        for method, path in (("POST", "/v1/event-streams"), ("PATCH", "/v1/event-streams/{id}"))
        for auth, field in (
            ({"method": "bearer", "token": SECRETS["bearer"] + "\r\nX-Injected: 1"}, "token"),
            ({"method": "basic", "username": "a:b", "password": SECRETS["password"]}, "username"),
            (
                {"method": "basic", "username": "a", "password": SECRETS["password"] + "\n"},
                "password",
            ),
            (
                {
                    "method": "custom_header",
                    "header_key": "X-Key\n",
                    "header_value": SECRETS["header"],
                },
                "header_key",
            ),
            (
                {
                    "method": "custom_header",
                    "header_key": "X-Key",
                    "header_value": SECRETS["header"] + "\x00",
                },
                "header_value",
            ),
        )
    ),
    ("POST", "/v1/event-streams", {**full_stream(), "status": "paused"}, "status"),
    (
        "POST",
        "/v1/event-streams",
        {**full_stream(), "delivery": {"retry_schedule": ["1s", "30s"]}},
        "delivery.retry_schedule.1",
    ),
    (
        "POST",
        "/v1/event-streams",
        {**full_stream(), "delivery": {"timeout": "1h"}},
        "delivery.timeout",
    ),
    (
        "POST",
        "/v1/event-streams",
        {**full_stream(), "signing_secrets": ["nope"]},
        "signing_secrets",
    ),
    ("POST", "/v1/event-streams", {**full_stream(), "id": UNKNOWN_ID}, "id"),
    ("POST", "/v1/event-streams", {**full_stream(), "surprise": 1}, "surprise"),
    ("POST", "/v1/event-streams", b"{not json", None),
    ("POST", "/v1/event-streams", b"[1, 2]", None),
    ("PATCH", "/v1/event-streams/{id}", {}, None),
    ("PATCH", "/v1/event-streams/{id}", {"name": None}, "name"),
    (
        "PATCH",
        "/v1/event-streams/{id}",
        {"delivery": {"max_in_flight": 0}},
        "delivery.max_in_flight",
    ),
    (
        "PATCH",
        "/v1/event-streams/{id}",
        {"delivery": {"retry_schedule": ["5s"]}},
        "delivery.retry_schedule.0",
    ),
    ("PATCH", "/v1/event-streams/{id}", {"delivery": {"ordering": "user"}}, "delivery.ordering"),
    ("GET", "/v1/event-streams", {"take": "0"}, "take"),
    ("GET", "/v1/event-streams", {"take": "101"}, "take"),
    ("GET", "/v1/event-streams", {"take": "ten"}, "take"),
    ("GET", "/v1/event-streams", {"from": "garbage"}, "from"),
    ("GET", "/v1/event-streams", {"limit": "5"}, "limit"),
    ("GET", "/v1/event-streams/{id}/deliveries", {"statuses": "failed,lost"}, "statuses.1"),
    ("GET", "/v1/event-streams/{id}/deliveries", {"event_types": "nope"}, "event_types.0"),
    ("GET", "/v1/event-streams/{id}/deliveries", {"date_from": "yesterday"}, "date_from"),
    (
        "GET",
        "/v1/event-streams/{id}/deliveries",
        {"date_from": "2026-02-01T00:00:00Z", "date_to": "2026-01-01T00:00:00Z"},
        "date_to",
    ),
    ("GET", "/v1/event-streams/{id}/stats", {"bucket": "1ms"}, "bucket"),
    ("GET", "/v1/event-streams/{id}/stats", {"bucket": "soon"}, "bucket"),
    (
        "GET",
        "/v1/event-streams/{id}/stats",
        {"bucket": "1s", "date_from": "2026-01-01T00:00:00Z", "date_to": "2026-01-02T00:00:00Z"},
        "bucket",
    ),
    ("POST", "/v1/event-streams/{id}/redeliver", {"statuses": []}, "statuses"),
    ("POST", "/v1/event-streams/{id}/redeliver", {"statuses": ["gone"]}, "statuses.0"),
    ("POST", "/v1/event-streams/{id}/redeliver", {"date_to": "never"}, "date_to"),
    ("POST", "/v1/event-streams/{id}/redeliver", b"nope", None),
    ("POST", "/v1/event-streams/{id}/test", {}, "event_type"),
    ("POST", "/v1/event-streams/{id}/test", {"event_type": "user.exploded"}, "event_type"),
    (
        "POST",
        "/v1/event-streams/{id}/test",
        {"event_type": "user.created", "data": {}},
        "data.user_id",
    ),
    (
        "POST",
        "/v1/event-streams/{id}/test",
        {"event_type": "user.created", "data": {"user_id": 5}},
        "data.user_id",
    ),
]


async def test_bad_input_answers_400_naming_the_field(api: Api) -> None:
    """Every route refuses bad input with a stable error object naming the field."""
    stream = await api.create("https://127.0.0.1/h")
    for method, template, given, field in BAD_INPUT:
        path = concrete(template, stream["id"])
        if isinstance(given, bytes):
            status, body = await api.call(method, path, raw=given)
        elif method == "GET":
            status, body = await api.call(method, path, params=given)
        else:
            status, body = await api.call(method, path, given)
        assert status == 400, (method, template, given, status, body)
        assert set(body) == {"code", "message", "field"}
        assert body["field"] == field, (template, given, body)
        assert body["code"] in {"invalid_request", "invalid_json"}
        assert body["message"]


async def test_unknown_and_deleted_ids_answer_404(api: Api) -> None:
    """Every route under a stream id answers 404 for an id that never existed and for a
    deleted stream (redelivering an event the stream never had is 409)."""
    stream = await api.create("https://127.0.0.1/h")
    await api.ok("DELETE", f"/v1/event-streams/{stream['id']}")
    bodies = {
        "patch_event_stream": {"name": "x"},
        "send_test_event": {"event_type": "user.created"},
        "redeliver": {},
    }
    for stream_id in (UNKNOWN_ID, stream["id"], "not-an-id"):
        for route in ROUTES:
            if "{id}" not in route.path:
                continue
            path = concrete(route.path, stream_id)
            status, body = await api.call(route.method, path, bodies.get(route.operation_id))
            assert (status, body["code"]) == (404, "not_found"), (route.method, path, body)
    live = await api.create("https://127.0.0.1/h")
    status, body = await api.call(
        "GET", f"/v1/event-streams/{live['id']}/deliveries/evt_0000000000000000000000"
    )
    assert status == 404
    status, body = await api.call(
        "POST", f"/v1/event-streams/{live['id']}/redeliver/evt_0000000000000000000000"
    )
    assert (status, body["code"]) == (409, "not_redeliverable")
    status, body = await api.call("GET", "/v2/nothing")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await api.call("PUT", "/v1/event-streams")
    assert (status, body["code"]) == (405, "method_not_allowed")


async def test_the_openapi_document_lists_exactly_the_served_routes(api: Api) -> None:
    """Every aiohttp route is in /openapi.json and every documented operation is served;
    the documented response schema of a stream is the one responses follow."""
    document = await api.ok("GET", "/openapi.json")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in api.app.router.routes()
        # The dashboard's static files are not JSON API operations.
        if route.resource is not None and route.resource.canonical not in DASHBOARD_PATHS
    }
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented
    assert len(served) == 16
    create = document["paths"]["/v1/event-streams"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StreamOut"
    }
    out = document["components"]["schemas"]["StreamOut"]
    assert "signing_secrets" not in out["properties"]
    assert "signing_secrets_count" in out["required"]
    assert document["paths"]["/healthz"]["get"].get("security") is None
    assert document["paths"]["/v1/event-streams"]["get"]["security"] == [{"bearer": []}]


async def test_health_checks_answer_without_a_token(api: Api) -> None:
    """/healthz is always 200; /readyz is 200 once the view caught up with Kafka up."""
    assert await api.call("GET", "/healthz", token=ANON) == (
        200,
        {"status": "ok", "kafka": None, "caught_up": None},
    )
    status, body = await api.call("GET", "/readyz", token=ANON)
    assert (status, body["kafka"], body["caught_up"]) == (200, True, True)


async def test_fuzzed_input_never_answers_500(api: Api) -> None:
    """Random JSON values, random bytes and mutated valid bodies on every writable route
    and random query strings on every reading route are never a 500."""
    rng = random.Random(7)
    stream = await api.create("https://127.0.0.1/h")

    def value(depth: int = 0) -> Any:
        kinds = ["str", "int", "float", "bool", "null", "list", "dict"]
        kind = rng.choice(kinds if depth < 3 else kinds[:5])
        return {
            "str": lambda: rng.choice(["", "x" * rng.randrange(300), "évt", "\x00", "1s", "*"]),
            "int": lambda: rng.choice([0, -1, 2**63, 10**30, 5]),
            "float": lambda: rng.choice([1.5, -0.0, 1e308]),
            "bool": lambda: rng.choice([True, False]),
            "null": lambda: None,
            "list": lambda: [value(depth + 1) for _ in range(rng.randrange(3))],
            "dict": lambda: {
                rng.choice(["name", "delivery", "destination", "event_type", "data", "x"]): value(
                    depth + 1
                )
                for _ in range(rng.randrange(4))
            },
        }[kind]()

    def mutate(body: dict[str, Any]) -> dict[str, Any]:
        mutated = json.loads(json.dumps(body))
        target = mutated
        while isinstance(target, dict) and target and rng.random() < 0.6:
            key = rng.choice(list(target))
            if not isinstance(target[key], dict):
                target[key] = value()
                return mutated
            target = target[key]
        if isinstance(target, dict):
            target[rng.choice(["name", "timeout", "type", "zzz"])] = value()
        return mutated

    writes = [
        ("POST", "/v1/event-streams"),
        ("PATCH", f"/v1/event-streams/{stream['id']}"),
        ("POST", f"/v1/event-streams/{stream['id']}/redeliver"),
        ("POST", f"/v1/event-streams/{stream['id']}/test"),
    ]
    reads = [
        f"/v1/event-streams/{stream['id']}/deliveries",
        f"/v1/event-streams/{stream['id']}/stats",
        "/v1/event-streams",
    ]
    for _ in range(120):
        method, path = rng.choice(writes)
        choice = rng.random()
        if choice < 0.3:
            status, body = await api.call(method, path, raw=rng.randbytes(rng.randrange(40)))
        elif choice < 0.6:
            status, body = await api.call(method, path, value())
        else:
            status, body = await api.call(method, path, mutate(full_stream()))
        assert status < 500, (method, path, status, body)
        params = {
            rng.choice(["take", "from", "statuses", "date_from", "bucket", "event_types"]): str(
                value()
            )
        }
        status, body = await api.call("GET", rng.choice(reads), params=params)
        assert status < 500, (params, status, body)


async def test_serve_prints_a_generated_token_that_works(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve() without a token generates one, prints it, and accepts only it."""
    from admin.api import serve
    from admin.broker import free_port

    port = free_port()
    task = asyncio.create_task(serve(settings, "127.0.0.1", port, None))
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                try:
                    async with http.get("/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            (line,) = [x for x in capsys.readouterr().out.splitlines() if "token" in x]
            token = line.rsplit(" ", 1)[-1]
            assert len(token) >= 40
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get("/v1/event-streams", headers=headers) as response:
                assert response.status == 200
            async with http.get("/v1/event-streams", headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 403
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_metrics_need_the_token_and_show_the_view(api: Api) -> None:
    """/metrics answers 401 without the token; with it, Prometheus text that counts the
    streams by status and says the view caught up."""
    status, _ = await api.call("POST", "/v1/event-streams", full_stream())
    assert status == 201
    anonymous = await api.client.get("/metrics")
    assert anonymous.status == 401
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = await response.text()
    api.bodies.append(text)
    assert response.status == 200
    assert 'tidings_streams{status="enabled"} 1.0' in text
    assert "tidings_view_caught_up 1.0" in text
