"""The one small interface every destination type implements: deliver a batch, and say for
each delivery how it went (an :class:`~dispatcher.outcome.Outcome`). A new destination type
is one module implementing :class:`DestinationClient` plus a line in :func:`build_client`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dispatcher.jobs import Job
from dispatcher.outcome import Outcome, OutcomeKind
from dispatcher.ssrf import DestinationPolicy
from dispatcher.streams import Stream

if TYPE_CHECKING:
    from dispatcher.webhook import HttpClients


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event ready to send: the job and the rendered CloudEvents JSON."""

    job: Job
    body: bytes


def refused(reason: str) -> Outcome:
    """The outcome of an endpoint the outbound policy forbids: permanent, never retried."""
    return Outcome(OutcomeKind.PERMANENT, None, f"destination refused: {reason}", None)


class DestinationClient(Protocol):
    """Sends rendered events somewhere."""

    #: How many deliveries one call of :meth:`deliver` takes at most.
    max_batch: int

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """Attempt every delivery of the batch; one outcome each, in order. Never raises
        for a destination failure: failures are outcomes."""
        ...

    async def close(self) -> None:
        """Release what the client holds."""
        ...


def build_client(stream: Stream, policy: DestinationPolicy, http: HttpClients) -> DestinationClient:
    """The client for a stream's destination (webhooks share ``http``'s pooled clients)."""
    if stream.destination.type == "webhook":
        from dispatcher.webhook import WebhookClient

        return WebhookClient(stream, policy, http)
    if stream.destination.type == "eventbridge":
        from dispatcher.eventbridge import EventBridgeClient

        return EventBridgeClient(stream, policy=policy)
    raise NotImplementedError(f"destination type {stream.destination.type!r}")
