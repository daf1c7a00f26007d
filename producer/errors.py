"""Errors the producer library raises. Bad input is a :class:`schemas.errors.ContractError`
(raised before anything is sent); these cover what happens after."""

from __future__ import annotations


class ProducerError(Exception):
    """Base class of the producer's own errors."""


class ProducerClosedError(ProducerError):
    """emit() was called after close()."""


class DeliveryFailedError(ProducerError):
    """Kafka did not acknowledge the event (after librdkafka's own retries)."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id} was not acknowledged by Kafka: {reason}")
        self.event_id = event_id
        self.reason = reason


class BufferFullError(ProducerError):
    """The bounded buffer stayed full for longer than the caller allowed."""
