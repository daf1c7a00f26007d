"""The producer library an identity service embeds: one call per lifecycle mutation.

Each call validates the input, encodes it with the event contract, and produces it to the
lifecycle topic keyed by the subject (user id or organization id), so one subject's events
stay in order in one partition. The Kafka producer is idempotent with ``acks=all``.

:class:`EventProducer` is the synchronous API; :class:`AsyncEventProducer` the asyncio one.
Both return the event id; the sync API waits for the acknowledgement when asked
(``wait=True``), the async API by default.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from confluent_kafka import KafkaError, Message, Producer
from pydantic import BaseModel

from producer.config import RECORD_BATCH_BYTES, Settings
from producer.errors import BufferFullError, DeliveryFailedError, ProducerClosedError
from schemas import constants
from schemas.codec import AvroCodec
from schemas.errors import EventValidationError, FieldError
from schemas.models import LifecycleEvent, make_event

Entity = Mapping[str, Any] | BaseModel
R = TypeVar("R")
#: An encoded event: value, key and headers.
Encoded = tuple[bytes, str, list[tuple[str, str | bytes | None]]]


def codec_for(settings: Settings) -> AvroCodec:
    """The codec the settings ask for: Confluent wire format with a registry URL, otherwise
    single-object encoding against the packaged schemas."""
    return AvroCodec(settings.schema_registry_url, topic=settings.lifecycle_topic)


def subject_key(event: LifecycleEvent) -> str:
    """The partitioning key: the user for user.*, the organization for organization.* (also
    its members, connections and group roles), the group for group.*."""
    obj = event.data.object
    if event.type.startswith("user."):
        return str(obj.user_id)
    if event.type.startswith("organization.") and hasattr(obj, "organization"):
        return str(obj.organization.id)
    if event.type.startswith("group.") and hasattr(obj, "group"):
        return str(obj.group.id)
    return str(obj.id)


def record_headers(
    event_type: str, event_id: str, purpose: str | None
) -> list[tuple[str, str | bytes | None]]:
    """The headers of a lifecycle record: type and id (and purpose on test events), so
    consumers filter and dedupe without decoding."""
    headers: list[tuple[str, str | bytes | None]] = [
        (constants.HEADER_EVENT_TYPE, event_type.encode()),
        (constants.HEADER_EVENT_ID, event_id.encode()),
    ]
    if purpose:
        headers.append((constants.HEADER_PURPOSE, purpose.encode()))
    return headers


def encode_record(codec: AvroCodec, settings: Settings, event: LifecycleEvent) -> Encoded:
    """Encode and size-check an event into its record (value, key, headers); nothing is sent
    when this raises :class:`~schemas.errors.EventValidationError`."""
    payload = codec.encode(event)
    if len(payload) > settings.max_event_bytes:
        raise EventValidationError(
            [
                FieldError(
                    "data",
                    f"the encoded event is {len(payload)} bytes, over the limit of "
                    f"{settings.max_event_bytes} bytes",
                )
            ],
            context="event too large",
        )
    return payload, subject_key(event), record_headers(event.type, event.id, event.purpose)


def producer_config(
    settings: Settings, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka settings of every lifecycle producer (the library's and the outbox relay's):
    idempotent, ``acks=all``, small batches."""
    config = settings.kafka_config(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "batch.size": RECORD_BATCH_BYTES,
            "queue.buffering.max.messages": settings.producer_buffer_messages,
            "message.max.bytes": settings.max_record_bytes,
        }
    )
    config.update(overrides or {})
    return config


def _plain(entity: Entity | None) -> dict[str, Any] | None:
    if entity is None:
        return None
    if isinstance(entity, BaseModel):
        return entity.model_dump(exclude_none=True)
    return dict(entity)


class _LifecycleMethods(ABC, Generic[R]):
    """One method per event type, shared by the sync and async producers."""

    _settings: Settings

    @abstractmethod
    def _send(self, event: LifecycleEvent) -> R:
        """Emit a built event (the sync or async way)."""

    def _emit_new(
        self,
        event_type: str,
        obj: Entity,
        previous: Entity | None = None,
        context: Entity | None = None,
    ) -> R:
        event = make_event(
            event_type,
            _plain(obj) or {},
            _plain(previous),
            _plain(context),
            tenant=self._settings.tenant,
        )
        return self._send(event)

    def _emit_parts(
        self,
        event_type: str,
        context: Entity | None,
        previous: Entity | None = None,
        /,
        **parts: Entity | bool | str | None,
    ) -> R:
        """Emit an event whose object is made of named parts (references, flags, settings);
        ``None`` parts are left out."""
        obj = {
            name: _plain(part) if isinstance(part, Mapping | BaseModel) else part
            for name, part in parts.items()
            if part is not None
        }
        return self._emit_new(event_type, obj, previous, context)

    def user_created(self, user: Entity, context: Entity | None = None) -> R:
        """A user was created; ``user`` is the user as Auth0 renders it (user_id required)."""
        return self._emit_new("user.created", user, context=context)

    def user_updated(
        self, user: Entity, previous: Entity | None = None, context: Entity | None = None
    ) -> R:
        """A user changed; ``previous`` is the user before the change, when known."""
        return self._emit_new("user.updated", user, previous, context)

    def user_deleted(self, user: Entity, context: Entity | None = None) -> R:
        """A user was deleted; ``deleted_at`` defaults to the event time, so the user record
        just deleted can be passed as it is."""
        return self._emit_new("user.deleted", user, context=context)

    def organization_created(self, organization: Entity, context: Entity | None = None) -> R:
        """An organization was created."""
        return self._emit_new("organization.created", organization, context=context)

    def organization_updated(
        self,
        organization: Entity,
        previous: Entity | None = None,
        context: Entity | None = None,
    ) -> R:
        """An organization changed."""
        return self._emit_new("organization.updated", organization, previous, context)

    def organization_deleted(self, organization: Entity, context: Entity | None = None) -> R:
        """An organization was deleted."""
        return self._emit_new("organization.deleted", organization, context=context)

    def organization_member_added(
        self, organization: Entity, user: Entity, context: Entity | None = None
    ) -> R:
        """A user joined an organization."""
        return self._emit_parts(
            "organization.member.added", context, organization=organization, user=user
        )

    def organization_member_deleted(
        self, organization: Entity, user: Entity, context: Entity | None = None
    ) -> R:
        """A user left an organization."""
        return self._emit_parts(
            "organization.member.deleted", context, organization=organization, user=user
        )

    def organization_member_role_assigned(
        self, organization: Entity, user: Entity, role: Entity, context: Entity | None = None
    ) -> R:
        """A member was given a role in an organization."""
        return self._emit_parts(
            "organization.member.role.assigned",
            context,
            organization=organization,
            user=user,
            role=role,
        )

    def organization_member_role_deleted(
        self, organization: Entity, user: Entity, role: Entity, context: Entity | None = None
    ) -> R:
        """A member's role in an organization was removed."""
        return self._emit_parts(
            "organization.member.role.deleted",
            context,
            organization=organization,
            user=user,
            role=role,
        )

    def organization_connection_added(
        self,
        organization: Entity,
        connection: Entity,
        settings: Mapping[str, bool | str] | None = None,
        context: Entity | None = None,
    ) -> R:
        """A connection was enabled for an organization; ``settings`` holds any of
        ``assign_membership_on_login``, ``show_as_button``, ``is_signup_enabled``,
        ``is_enabled`` (booleans) and ``organization_access_level`` (``none``, ``readonly``,
        ``limited`` or ``full``)."""
        return self._emit_parts(
            "organization.connection.added",
            context,
            organization=organization,
            connection=connection,
            **(settings or {}),
        )

    def organization_connection_updated(
        self,
        organization: Entity,
        connection: Entity,
        settings: Mapping[str, bool | str] | None = None,
        context: Entity | None = None,
        *,
        previous: Entity | None = None,
    ) -> R:
        """An organization's settings for one of its connections changed (``settings`` as for
        :meth:`organization_connection_added`); ``previous`` is the whole object (organization,
        connection, settings) before the change, when known."""
        return self._emit_parts(
            "organization.connection.updated",
            context,
            previous,
            organization=organization,
            connection=connection,
            **(settings or {}),
        )

    def organization_connection_removed(
        self, organization: Entity, connection: Entity, context: Entity | None = None
    ) -> R:
        """A connection was disabled for an organization."""
        return self._emit_parts(
            "organization.connection.removed",
            context,
            organization=organization,
            connection=connection,
        )

    def organization_group_role_assigned(
        self, organization: Entity, group: Entity, role: Entity, context: Entity | None = None
    ) -> R:
        """A group was given a role within an organization (``created_at``: the event time)."""
        return self._emit_parts(
            "organization.group.role.assigned",
            context,
            organization=organization,
            group=group,
            role=role,
        )

    def organization_group_role_deleted(
        self, organization: Entity, group: Entity, role: Entity, context: Entity | None = None
    ) -> R:
        """A group's role within an organization was removed (``deleted_at``: the event time)."""
        return self._emit_parts(
            "organization.group.role.deleted",
            context,
            organization=organization,
            group=group,
            role=role,
        )

    def group_created(self, group: Entity, context: Entity | None = None) -> R:
        """A group was created."""
        return self._emit_new("group.created", group, context=context)

    def group_updated(
        self, group: Entity, previous: Entity | None = None, context: Entity | None = None
    ) -> R:
        """A group changed (``updated_at`` required); ``previous`` is the group before the
        change, when known."""
        return self._emit_new("group.updated", group, previous, context)

    def group_deleted(self, group: Entity, context: Entity | None = None) -> R:
        """A group was deleted."""
        return self._emit_new("group.deleted", group, context=context)

    def group_member_added(self, group: Entity, member: Entity, context: Entity | None = None) -> R:
        """A user or a connection became a member of a group."""
        return self._emit_parts("group.member.added", context, group=group, member=member)

    def group_member_deleted(
        self, group: Entity, member: Entity, context: Entity | None = None
    ) -> R:
        """A member left a group."""
        return self._emit_parts("group.member.deleted", context, group=group, member=member)

    def group_role_assigned(self, group: Entity, role: Entity, context: Entity | None = None) -> R:
        """A group was given a role (``created_at``: the event time)."""
        return self._emit_parts("group.role.assigned", context, group=group, role=role)

    def group_role_deleted(self, group: Entity, role: Entity, context: Entity | None = None) -> R:
        """A group's role was removed (``deleted_at``: the event time)."""
        return self._emit_parts("group.role.deleted", context, group=group, role=role)


class _KafkaCore:
    """The confluent-kafka producer, its poll thread and the bounded-buffer back-pressure."""

    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec | None,
        topic: str | None,
        overrides: Mapping[str, Any] | None,
    ) -> None:
        self.settings = settings
        self.codec = codec or codec_for(settings)
        self.topic = topic or settings.lifecycle_topic
        config = producer_config(settings, overrides)
        self.producer = Producer(config)
        self.closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name="tidings-producer-poll", daemon=True
        )
        self._poller.start()

    def _poll_loop(self) -> None:
        # Delivery reports are served here, so callers never have to call poll() themselves.
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def encode(self, event: LifecycleEvent) -> Encoded:
        """Encode and size-check an event; nothing is sent when this raises."""
        return encode_record(self.codec, self.settings, event)

    def try_produce(
        self,
        event: LifecycleEvent,
        encoded: Encoded,
        on_done: Callable[[BaseException | None], None],
    ) -> bool:
        """Hand the record to librdkafka; False when its bounded buffer is full."""
        if self.closed:
            raise ProducerClosedError("the producer is closed")
        payload, key, headers = encoded

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            on_done(None if err is None else DeliveryFailedError(event.id, err.str()))

        try:
            self.producer.produce(
                self.topic, payload, key.encode(), headers=headers, on_delivery=delivered
            )
        except BufferError:
            return False
        return True

    def flush(self, timeout: float) -> int:
        """Wait for outstanding acknowledgements; returns how many are still pending."""
        return int(self.producer.flush(timeout))

    def close(self, timeout: float) -> int:
        """Flush, then stop the poll thread. Safe to call twice."""
        if self.closed:
            return 0
        self.closed = True
        remaining = self.flush(timeout)
        self._stop.set()
        self._poller.join()
        return remaining


class EventProducer(_LifecycleMethods[str]):
    """Synchronous producer. Each call returns the event id once the event is queued, or once
    Kafka acknowledged it with ``wait=True`` on :meth:`emit`.

    When the bounded buffer is full, calls block (back-pressure) up to ``buffer_timeout``
    seconds, then raise :class:`~producer.errors.BufferFullError`."""

    def __init__(
        self,
        settings: Settings,
        *,
        codec: AvroCodec | None = None,
        topic: str | None = None,
        buffer_timeout: float = 30.0,
        kafka_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._core = _KafkaCore(settings, codec, topic, kafka_overrides)
        self._buffer_timeout = buffer_timeout
        self._failures: list[BaseException] = []

    def _send(self, event: LifecycleEvent) -> str:
        return self.emit(event)

    def emit(self, event: LifecycleEvent, *, wait: bool = False, timeout: float = 30.0) -> str:
        """Send one event; return its id. ``wait=True`` blocks until Kafka acknowledges it and
        raises :class:`~producer.errors.DeliveryFailedError` if it does not."""
        encoded = self._core.encode(event)
        # A future (a lock and a condition) only for a caller who waits on it.
        done: Future[None] | None = Future() if wait else None

        def on_done(error: BaseException | None) -> None:
            if error is not None:
                self._failures.append(error)
            if done is None:
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        deadline = time.monotonic() + self._buffer_timeout
        while not self._core.try_produce(event, encoded, on_done):
            if time.monotonic() > deadline:
                raise BufferFullError(
                    f"the producer buffer stayed full for {self._buffer_timeout}s"
                )
            time.sleep(0.005)
        if done is not None:
            done.result(timeout)
        return event.id

    @property
    def failures(self) -> list[BaseException]:
        """Delivery failures of events sent without ``wait`` (librdkafka already retried)."""
        return list(self._failures)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every queued event is acknowledged; returns how many are still pending."""
        return self._core.flush(timeout)

    def close(self, timeout: float = 30.0) -> int:
        """Flush and release the producer. Safe to call twice."""
        return self._core.close(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventProducer(_LifecycleMethods[Awaitable[str]]):
    """asyncio producer: ``await producer.user_created(user)`` returns the id once Kafka has
    acknowledged the event (``wait=False`` on :meth:`emit` returns once it is queued).
    A full buffer makes callers await, never grow memory."""

    def __init__(
        self,
        settings: Settings,
        *,
        codec: AvroCodec | None = None,
        topic: str | None = None,
        kafka_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._core = _KafkaCore(settings, codec, topic, kafka_overrides)

    def _send(self, event: LifecycleEvent) -> Awaitable[str]:
        return self.emit(event)

    async def emit(self, event: LifecycleEvent, *, wait: bool = True) -> str:
        """Send one event and return its id, after Kafka's acknowledgement unless ``wait`` is
        false."""
        encoded = self._core.encode(event)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def on_done(error: BaseException | None) -> None:
            # Called on the poll thread: hand the outcome to the loop that awaits it.
            loop.call_soon_threadsafe(settle, error)

        # librdkafka signals no event when buffer space frees up, so poll for it briefly.
        while not self._core.try_produce(event, encoded, on_done):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if wait:
            await done
        else:
            done.add_done_callback(lambda f: f.exception())  # never "exception never retrieved"
        return event.id

    async def flush(self, timeout: float = 30.0) -> int:
        """Wait for every queued event's acknowledgement without blocking the loop."""
        return await asyncio.to_thread(self._core.flush, timeout)

    async def close(self, timeout: float = 30.0) -> int:
        """Flush and release the producer. Safe to call twice."""
        return await asyncio.to_thread(self._core.close, timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
