"""What the admin API's handlers share: settings, the view, the history store and its
ingest, the registry writer and the requeuer, with their start and stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from admin.api.errors import not_found, unavailable
from admin.api.requeue import Requeuer
from admin.api.view import AdminView
from admin.history import HistoryStore, open_store
from admin.history.ingest import HistoryIngest
from dispatcher.registry import RegistryWriter
from dispatcher.ssrf import DestinationPolicy
from dispatcher.streams import Stream
from producer.config import Settings
from producer.producer import codec_for
from schemas.codec import AvroCodec

#: How many streams a Tidings installation holds at most (creating more answers 409).
MAX_STREAMS: Final = 100


@dataclass
class AdminState:
    """Shared by every request of one admin server."""

    settings: Settings
    token: str
    max_streams: int = MAX_STREAMS
    view: AdminView = field(init=False)
    policy: DestinationPolicy = field(init=False)
    writer: RegistryWriter | None = None
    requeuer: Requeuer | None = None
    codec: AvroCodec | None = None
    history: HistoryStore | None = None
    ingest: HistoryIngest | None = None
    #: Writes are serialized in this process, so the stream limit holds under concurrency.
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.view = AdminView(self.settings)
        self.policy = DestinationPolicy(self.settings.destination_allowlist)

    def ready_view(self) -> AdminView:
        """The view, once it has caught up; 503 before."""
        if not self.view.caught_up.is_set():
            raise unavailable("the admin view is still reading Kafka; retry shortly")
        return self.view

    def ready_history(self) -> HistoryStore:
        """The history store, once it has read the topics up to where they stood at start;
        503 before."""
        if self.history is None or self.ingest is None or not self.ingest.caught_up.is_set():
            raise unavailable("delivery history is still reading Kafka; retry shortly")
        return self.history

    def stream(self, stream_id: str) -> Stream:
        """A stream of the view; 404 when unknown."""
        stream = self.ready_view().table.streams.get(stream_id)
        if stream is None:
            raise not_found(f"no event stream {stream_id!r}")
        return stream

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """Start the view, the history store and Kafka clients with the server; stop them
        with it."""
        self.history = history = await asyncio.to_thread(open_store, self.settings)
        self.ingest = ingest = HistoryIngest(
            self.settings, history, shared=self.settings.history_url is not None
        )
        self.writer = RegistryWriter(self.settings)
        self.requeuer = Requeuer(self.settings)
        self.codec = codec_for(self.settings)
        tasks = [
            asyncio.create_task(self.view.run(), name="tidings-admin-view"),
            asyncio.create_task(ingest.run(), name="tidings-history-ingest"),
        ]
        try:
            yield
        finally:
            self.view.stop()
            ingest.stop()
            for task in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 10)
            await asyncio.to_thread(ingest.close)
            await asyncio.to_thread(history.close)
            await self.requeuer.close()
            self.writer = None  # RegistryWriter has no close(): let its producer be freed


STATE: Final = web.AppKey("tidings_admin_state", AdminState)
