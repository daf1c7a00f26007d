"""The webhook destination: POST the CloudEvents JSON with the stream's authorization and
Standard Webhooks signature headers.

Streams delivering to the same origin share a pooled keep-alive HTTP client (pyreqwest: Rust's
reqwest/hyper, whose connection handling runs off the event loop and costs about a third of
aiohttp's client CPU per request; see pyproject.toml). Redirects are not followed, proxies
from the environment are ignored, and a response body is read only up to
:data:`MAX_RESPONSE_BYTES`.

The outbound policy (:mod:`dispatcher.ssrf`) is enforced on the addresses actually connected
to: a named host is resolved here, every address is checked, and the client is pinned to a
checked address (re-resolved every :data:`RESOLVE_TTL`), so a DNS change after the check can
never steer a connection to a forbidden address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import structlog
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import PyreqwestError, RequestTimeoutError

from dispatcher.delivery_log import MAX_RESPONSE_BODY
from dispatcher.destinations import Delivery, refused
from dispatcher.outcome import Outcome, OutcomeKind, classify
from dispatcher.signing import signature_headers
from dispatcher.ssrf import DestinationPolicy, DestinationRefusedError, Endpoint
from dispatcher.streams import (
    BasicAuthorization,
    BearerAuthorization,
    CustomHeaderAuthorization,
    Stream,
    WebhookConfiguration,
)

log = structlog.get_logger(__name__)

#: How much of a response body is read (for the error message); the rest is discarded.
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "Tidings-Webhooks/0.1"
#: How long a checked resolution of the endpoint's host is used before resolving it again
#: (not less than the longest delivery timeout, 60 s: see ``WebhookClient._current``).
RESOLVE_TTL = 60.0
#: Connections open at once to one origin; more requests wait for one. Each open connection
#: costs ~70 KB, and a stream whose endpoint hangs holds at most its ``max_in_flight`` (64)
#: of them, so several hanging streams still leave room for their healthy neighbours.
MAX_PER_ORIGIN = 256
#: An idle keep-alive connection is closed after this long.
POOL_IDLE = timedelta(seconds=30)
#: Connecting may take this long at most (and never longer than the stream's timeout, which
#: bounds the whole attempt).
CONNECT_TIMEOUT = timedelta(seconds=10)


def authorization_headers(config: WebhookConfiguration) -> dict[str, str]:
    """The headers that authenticate Tidings to the receiver."""
    auth = config.webhook_authorization
    if isinstance(auth, BearerAuthorization):
        return {"Authorization": f"Bearer {auth.token.get_secret_value()}"}
    if isinstance(auth, BasicAuthorization):
        raw = f"{auth.username}:{auth.password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    if isinstance(auth, CustomHeaderAuthorization):
        return {auth.header_key: auth.header_value.get_secret_value()}
    return {}


def unsendable_reason(config: WebhookConfiguration) -> str | None:
    """Why this configuration's authorization cannot be sent in a request header (a stream
    stored before the API checked its header values), or ``None``. Never quotes a value."""
    auth = config.webhook_authorization
    problem = auth.header_problem() if auth is not None else None
    if problem is None:
        return None
    field, why = problem
    return (
        f"invalid stream configuration: destination.configuration.webhook_authorization."
        f"{field} {why}; set it again through the API"
    )


def _error_text(exc: PyreqwestError) -> str:
    """The innermost cause of a client error (``Connection refused (os error 111)``), which
    says more than the outer ``connection error``."""
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    if causes:
        return f"{type(exc).__name__}: {causes[-1].get('message', exc)}"
    return f"{type(exc).__name__}: {exc}"


#: Where a pooled client connects: scheme, host, port, and the pinned address (None for an
#: IP literal, which needs no resolution).
Origin = tuple[str, str, int, str | None]


class HttpClients:
    """Keep-alive HTTP clients shared by the streams that deliver to the same origin.

    One client per origin caps the connections to it at :data:`MAX_PER_ORIGIN` however many
    streams point there (a hundred streams of 64 in flight would otherwise open 6,400), and
    its pool is reused across them. Reference counted: the last stream to let go closes it.
    """

    def __init__(self, max_per_origin: int = MAX_PER_ORIGIN) -> None:
        self._max = max_per_origin
        self._clients: dict[Origin, tuple[Client, int]] = {}

    def acquire(self, origin: Origin) -> Client:
        """The origin's client (built on first use); pair with :meth:`release`."""
        entry = self._clients.get(origin)
        if entry is None:
            entry = (self._build(origin), 0)
        self._clients[origin] = (entry[0], entry[1] + 1)
        return entry[0]

    async def release(self, origin: Origin) -> None:
        """Give back one reference; the last one closes the client."""
        client, refs = self._clients[origin]
        if refs > 1:
            self._clients[origin] = (client, refs - 1)
            return
        del self._clients[origin]
        await client.close()

    def _build(self, origin: Origin) -> Client:
        _scheme, host, _port, pinned = origin
        builder = (
            ClientBuilder()
            .follow_redirects(False)
            .no_proxy()
            .user_agent(USER_AGENT)
            .max_connections(self._max)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
        )
        if pinned is not None:
            builder = builder.resolve(host, pinned, 0)
        return builder.build()

    def __len__(self) -> int:
        return len(self._clients)


#: Stands in for an endpoint the policy refused: never called (every delivery is refused).
_NOWHERE = Endpoint("http://refused.invalid/", "http", "refused.invalid", 80, None)


class WebhookClient:
    """Delivers to one stream's webhook endpoint."""

    max_batch = 1

    def __init__(self, stream: Stream, policy: DestinationPolicy, clients: HttpClients) -> None:
        config = stream.destination.configuration
        assert isinstance(config, WebhookConfiguration)
        self._policy = policy
        self._clients = clients
        #: Why every delivery fails at once (a permanent outcome, so a dead letter with the
        #: reason), when the stream can never be delivered as configured.
        self._refused: Outcome | None = None
        try:
            # The URL as the client's own parser reads it: requests go to exactly the host
            # checked here (see dispatcher.ssrf).
            endpoint = policy.check_url(config.webhook_endpoint)
        except DestinationRefusedError as exc:
            self._refused = refused(str(exc))
            endpoint = _NOWHERE
        unsendable = unsendable_reason(config)
        if unsendable is not None:
            log.error("stream_unsendable", stream_id=stream.id, reason=unsendable)
            self._refused = Outcome(OutcomeKind.PERMANENT, None, unsendable, None)
        self._url = endpoint.url
        self._secrets = [s.get_secret_value() for s in stream.signing_secrets]
        self._timeout = stream.delivery.timeout
        self._permanent_4xx = stream.delivery.permanent_4xx
        self._headers = {"Content-Type": "application/json"}
        if unsendable is None:
            self._headers.update(authorization_headers(config))
        self._origin_base = (endpoint.scheme, endpoint.host, endpoint.port)
        #: The name to resolve and pin, or None for an IP literal (check_url checked it).
        self._host = endpoint.host if endpoint.address is None else None
        self._origin: Origin | None = None
        self._client: Client | None = None
        self._resolved_at = -RESOLVE_TTL
        self._resolving = asyncio.Lock()
        self._retired: list[Origin] = []
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _fresh(self) -> bool:
        return self._client is not None and (
            self._host is None or time.monotonic() - self._resolved_at < RESOLVE_TTL
        )

    async def _current(self) -> Client:
        """The client for the endpoint, pinned to a checked address of the host when the
        URL names one. Raises DestinationRefusedError or socket.gaierror."""
        if self._fresh():
            assert self._client is not None
            return self._client
        async with self._resolving:
            if self._fresh():
                assert self._client is not None
                return self._client
            pinned: str | None = None
            if self._host is not None:
                addresses = await self._policy.checked_addresses(self._host)
                self._resolved_at = time.monotonic()
                current = self._origin[3] if self._origin is not None else None
                pinned = current if current in addresses else addresses[0]
            origin: Origin = (*self._origin_base, pinned)
            if origin != self._origin:
                if self._origin is not None:
                    # Requests last at most 60 s (the timeout's bound) and pins change at
                    # most every RESOLVE_TTL: clients retired earlier are idle by now.
                    for old in self._retired:
                        await self._clients.release(old)
                    self._retired = [self._origin]  # in-flight requests keep using it
                self._client = self._clients.acquire(origin)
                self._origin = origin
            assert self._client is not None
            return self._client

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """POST each delivery (concurrently when given several)."""
        if len(batch) == 1:
            return [await self._post(batch[0])]
        return list(await asyncio.gather(*(self._post(d) for d in batch)))

    async def _post(self, delivery: Delivery) -> Outcome:
        if self._refused is not None:
            return self._refused
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._attempt(delivery)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _attempt(self, delivery: Delivery) -> Outcome:
        try:
            client = await self._current()
        except DestinationRefusedError as exc:
            return refused(str(exc))
        except socket.gaierror as exc:
            return classify(None, error=f"cannot resolve {self._host}: {exc}")
        headers = dict(self._headers)
        headers.update(signature_headers(self._secrets, delivery.job.event_id, delivery.body))
        request = (
            client.post(self._url).headers(headers).body_bytes(delivery.body).timeout(self._timeout)
        )
        try:
            async with request.build_streamed() as response:
                # Read a bounded prefix so a huge or endless body cannot hold the slot.
                prefix = await response.body_reader.read(MAX_RESPONSE_BYTES)
                outcome = classify(
                    response.status,
                    retry_after_header=response.get_header("Retry-After"),
                    permanent_4xx=self._permanent_4xx,
                )
                if outcome.kind is OutcomeKind.SUCCESS or not prefix:
                    return outcome
                # A failed attempt keeps the start of the answer: why the receiver refused.
                answer = bytes(prefix[:MAX_RESPONSE_BODY]).decode("utf-8", errors="replace")
                return replace(outcome, response_body=answer)
        except RequestTimeoutError:
            seconds = self._timeout.total_seconds()
            return classify(None, timed_out=True, error=f"timeout after {seconds:g}s")
        except PyreqwestError as exc:
            return classify(None, error=_error_text(exc))

    async def close(self) -> None:
        """Let the attempts in flight finish (at most one timeout), then close the
        connection pools. Safe to call twice."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._timeout.total_seconds())
        origins = [*self._retired, *([self._origin] if self._origin is not None else [])]
        self._client, self._origin = None, None
        self._retired.clear()
        for origin in origins:
            await self._clients.release(origin)
