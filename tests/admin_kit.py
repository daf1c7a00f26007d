"""Helpers for admin API tests: a running API on 127.0.0.1 and a client that scans every
response for secrets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from admin.api import build_app
from admin.broker import free_port
from dispatch_kit import TidingsProcess, running_dispatcher
from dispatcher.service import Dispatcher
from dispatcher.signing import generate_secret
from producer.config import Settings

TOKEN = "admin-token-for-tests-0123456789"
#: Secrets every test gives the API; no response body may ever contain one.
SECRETS = {
    "bearer": "bearer-secret-Qx81",
    "password": "basic-password-Zr55",
    "header": "header-value-Lk09",
    "signing": generate_secret(),
}
UNKNOWN_ID = "est_0000000000000000000000"
ANON = object()


class Api:
    """A client of one admin server that keeps every response body for the secret scan."""

    def __init__(self, client: TestClient[Any, Any], app: Any) -> None:
        self.client = client
        self.app = app
        self.bodies: list[str] = []

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        token: object = TOKEN,
    ) -> tuple[int, Any]:
        """Send a request; return the status and the parsed JSON body (None when empty)."""
        headers = {} if token is ANON else {"Authorization": f"Bearer {token}"}
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        response = await self.client.request(
            method, path, data=data, params=params, headers=headers
        )
        text = await response.text()
        self.bodies.append(text)
        return response.status, json.loads(text) if text else None

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Send a request that must succeed (2xx); return the JSON body."""
        status, answer = await self.call(method, path, body, **kwargs)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    async def create(self, url: str, **fields: Any) -> dict[str, Any]:
        """Create a webhook stream for ``url``."""
        body = {
            "name": "stream",
            "subscriptions": [{"event_type": "*"}],
            "destination": {"type": "webhook", "configuration": {"webhook_endpoint": url}},
            **fields,
        }
        answer: dict[str, Any] = await self.ok("POST", "/v1/event-streams", body)
        return answer

    def assert_no_secret_leaked(self) -> None:
        """No response of this test contained any secret it gave."""
        for text in self.bodies:
            for name, secret in SECRETS.items():
                assert secret not in text, f"the {name} secret leaked: {text[:300]}"


async def start_api(settings: Settings, **kwargs: Any) -> tuple[TestClient[Any, Any], Api]:
    """An admin server on 127.0.0.1, ready (its view caught up)."""
    app = build_app(settings, TOKEN, **kwargs)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    api = Api(client, app)
    for _ in range(200):
        status, _body = await api.call("GET", "/readyz", token=ANON)
        if status == 200:
            return client, api
        await asyncio.sleep(0.05)
    await client.close()
    raise AssertionError("the admin API never became ready")


@contextlib.asynccontextmanager
async def running_system(settings: Settings) -> AsyncIterator[tuple[Api, Dispatcher]]:
    """A ready admin API and a running dispatcher on the same fresh topics."""
    client, api = await start_api(settings)
    try:
        async with running_dispatcher(settings) as dispatcher:
            yield api, dispatcher
    finally:
        await client.close()


class AdminProcess(TidingsProcess):
    """``tidings admin serve`` as a real child process on a free port, with :data:`TOKEN`."""

    def __init__(self, settings: Settings, log_path: Any) -> None:
        self.port = free_port()
        command = ("admin", "serve", "--host", "127.0.0.1", "--port", str(self.port))
        super().__init__(settings, log_path, command, env={"TIDINGS_ADMIN_TOKEN": TOKEN})

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://127.0.0.1:{self.port}"
