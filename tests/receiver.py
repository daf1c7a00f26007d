"""A real HTTP receiver on 127.0.0.1 whose answer can be scripted per request mid-test."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    #: Case-insensitive, as HTTP header names are.
    headers: CIMultiDict[str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        """The CloudEvent id."""
        return str(self.json["id"])


#: A script gets the request and how many times this event id was seen before (0 on the
#: first attempt) and answers a status code, or "hang" to never answer.
Script = Callable[[Received, int], int | str]


class Receiver:
    """Records every request; answers what ``script`` says (200 by default)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: Script = lambda _r, _n: 200
        self._seen: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self.port = 0
        #: Seconds every answer is held back (a slow receiver).
        self.delay = 0.0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Receiver:
        """Listen on a free port of 127.0.0.1 (https with ``ssl_context``)."""
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "hook") -> str:
        """The URL of one path on this receiver."""
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(request.path.lstrip("/"), CIMultiDict(request.headers), body, 0)
        try:
            key = received.event_id
        except (ValueError, KeyError):
            key = body.decode(errors="replace")
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        answer = self.script(received, seen)
        if answer == "hang":
            await asyncio.sleep(3600)
        if self.delay:
            await asyncio.sleep(self.delay)
        received.status = int(answer)
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
        return web.Response(status=received.status, text="ok")

    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered 2xx (on one path, if given)."""
        return [
            r for r in self.requests if 200 <= r.status < 300 and (path is None or r.path == path)
        ]

    def delivered_ids(self, path: str | None = None) -> set[str]:
        """Distinct event ids answered 2xx."""
        return {r.event_id for r in self.delivered(path)}

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds, re-checking on every request."""

        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(condition)

        try:
            await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"condition not met in {timeout}s; {len(self.requests)} requests, "
                f"{len(self.delivered())} delivered"
            ) from None
