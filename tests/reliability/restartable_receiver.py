"""A test receiver that can go down and come back: for outages of the destination."""

from __future__ import annotations

from aiohttp import web

from receiver import Receiver


class RestartableReceiver(Receiver):
    """A :class:`Receiver` that can stop listening (clients get "connection refused") and
    listen again on the same port, keeping what it recorded."""

    async def go_down(self) -> None:
        """Close the listener and every open connection."""
        await self.stop()
        self._runner = None

    async def come_back(self) -> None:
        """Listen again on the port it had."""
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
