"""The webhook destination: POST the CloudEvents JSON with the stream's authorization and
Standard Webhooks signature headers, over a shared pooled aiohttp session."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence

import aiohttp
from yarl import URL

from dispatcher.destinations import Delivery
from dispatcher.outcome import Outcome, OutcomeKind, classify
from dispatcher.signing import signature_headers
from dispatcher.ssrf import DestinationPolicy, DestinationRefusedError, refusal_of
from dispatcher.streams import (
    BasicAuthorization,
    BearerAuthorization,
    CustomHeaderAuthorization,
    Stream,
    WebhookConfiguration,
)

#: How much of a response body is read (for the error message); the rest is discarded.
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "Tidings-Webhooks/0.1"


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


def refused(reason: str) -> Outcome:
    """The outcome of an endpoint the outbound policy forbids: permanent, never retried."""
    return Outcome(OutcomeKind.PERMANENT, None, f"destination refused: {reason}", None)


class WebhookClient:
    """Delivers to one stream's webhook endpoint."""

    max_batch = 1

    def __init__(
        self, stream: Stream, http: aiohttp.ClientSession, policy: DestinationPolicy
    ) -> None:
        config = stream.destination.configuration
        assert isinstance(config, WebhookConfiguration)
        self._url = config.webhook_endpoint
        self._refused: str | None = None
        try:
            policy.check_url(self._url)
        except DestinationRefusedError as exc:
            self._refused = str(exc)
        self._http = http
        self._target = URL(self._url)  # parsed once, not on every request
        self._secrets = [s.get_secret_value() for s in stream.signing_secrets]
        seconds = stream.delivery.timeout.total_seconds()
        self._timeout = aiohttp.ClientTimeout(total=seconds, connect=min(seconds, 10.0))
        self._permanent_4xx = stream.delivery.permanent_4xx
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **authorization_headers(config),
        }

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """POST each delivery (concurrently when given several)."""
        if len(batch) == 1:
            return [await self._post(batch[0])]
        return list(await asyncio.gather(*(self._post(d) for d in batch)))

    async def _post(self, delivery: Delivery) -> Outcome:
        if self._refused is not None:
            return refused(self._refused)
        headers = dict(self._headers)
        headers.update(signature_headers(self._secrets, delivery.job.event_id, delivery.body))
        try:
            async with self._http.post(
                self._target,
                data=delivery.body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                # Read a bounded prefix so a huge or endless body cannot hold the slot.
                await response.content.read(MAX_RESPONSE_BYTES)
                return classify(
                    response.status,
                    retry_after_header=response.headers.get("Retry-After"),
                    permanent_4xx=self._permanent_4xx,
                )
        except TimeoutError:
            return classify(None, timed_out=True, error=f"timeout after {self._timeout.total:g}s")
        except aiohttp.ClientError as exc:
            refusal = refusal_of(exc)
            if refusal is not None:
                return refused(str(refusal))
            return classify(None, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """The session is shared and owned by the dispatcher: nothing to release here."""
