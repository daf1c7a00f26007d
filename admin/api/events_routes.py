"""``GET /v1/events``: lifecycle events pulled over Server-Sent Events, resumable by cursor.

For consumers that cannot expose a webhook (a laptop, a batch job, a system behind a
firewall), shaped like Auth0's pull API: each event is ``event: <type>``, ``id: <cursor>``,
``data: {"offset": "<cursor>", "event": {…the CloudEvent…}}``. The cursor
(:mod:`admin.api.event_cursor`) covers every partition of the lifecycle topic, so ``from=`` or
the ``Last-Event-ID`` header (which wins) resumes exactly after the last event received.

Each connection reads the topic with a consumer of its own that assigns partitions (no group,
nothing committed). Memory per connection is bounded and a slow reader slows the reading: a
batch is consumed only once the previous one was written, ``write`` waits while the socket's
buffer is full, and librdkafka's prefetch is capped at about 1 MB. The server closes a
connection after ``events_max_connection`` (clients reconnect with ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

import structlog
from aiohttp import web
from confluent_kafka import KafkaException, Message, TopicPartition

from admin.api.connection_limit import ConnectionLimiter
from admin.api.errors import unavailable
from admin.api.event_cursor import Positions, encode_cursor
from admin.api.events_openapi import OPENAPI_PATH_ITEM
from admin.api.events_request import (
    ACCESS_TOKEN_PARAM,
    EVENTS_PATH,
    StartRequest,
    parse_request,
    resolve_cursor,
)
from admin.api.sse import (
    CONNECTION_TIMEOUT,
    PROCESSING_ERROR,
    comment_frame,
    connected_frame,
    error_frame,
    event_frame,
    offset_only_frame,
    retry_frame,
)
from admin.api.state import STATE
from dispatcher.kafka_io import AsyncConsumer
from dispatcher.subscriptions import SubscriptionFilter
from producer.config import Settings
from schemas.codec import AvroCodec
from schemas.constants import HEADER_EVENT_TYPE
from schemas.errors import ContractError
from schemas.fast_render import render_record_json, with_stream
from schemas.record_headers import RecordHeaders

log = structlog.get_logger(__name__)

#: Records consumed (and frames written) per round: bounds a connection's buffered events.
BATCH: Final = 200
#: Longest wait for records in one round, so heartbeats and the deadline are kept.
POLL_SECONDS: Final = 0.25
#: The EventSource reconnection delay the server suggests.
RETRY_MILLISECONDS: Final = 2000
_KAFKA_TIMEOUT: Final = 10.0


LIMITER: Final = web.AppKey("tidings_events_limiter", ConnectionLimiter)
#: Set when the server shuts down: every open stream ends within a round.
STOPPING: Final = web.AppKey("tidings_events_stopping", asyncio.Event)


def install(app: web.Application, settings: Settings) -> None:
    """Register the route, its connection limiter and its shutdown signal on ``app``."""
    app[LIMITER] = ConnectionLimiter(settings.events_max_connections_per_token)
    app[STOPPING] = asyncio.Event()

    async def stop_streams(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(stop_streams)
    app.router.add_get(EVENTS_PATH, stream_events, allow_head=False)


def _token(request: web.Request) -> str:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        given.strip() if scheme.lower() == "bearer" else request.query.get(ACCESS_TOKEN_PARAM, "")
    )


def _consumer(settings: Settings) -> AsyncConsumer:
    return AsyncConsumer(
        settings.kafka_config(
            **{
                # Partitions are assigned, never subscribed: the group id is never joined.
                "group.id": f"{settings.topic_prefix}events-api",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                # Bound what librdkafka prefetches per connection (the rest waits in Kafka).
                "queued.max.messages.kbytes": 1024,
                "max.partition.fetch.bytes": 262144,
                "fetch.max.bytes": 1048576,
                "fetch.queue.backoff.ms": 5,
                # A live tail wants each record at once: the broker holds an empty fetch at
                # most this long (librdkafka's 500 ms default showed up as the p99 latency).
                "fetch.wait.max.ms": 20,
            }
        ),
        name="tidings-events-api",
    )


async def _start(consumer: AsyncConsumer, topic: str, start: StartRequest) -> Positions:
    kafka = consumer.consumer
    try:
        metadata = await consumer.call(kafka.list_topics, topic, _KAFKA_TIMEOUT)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise unavailable(f"the lifecycle topic {topic} is not available")
        marks: dict[int, tuple[int, int]] = {}
        for partition in sorted(described.partitions):
            low, high = await consumer.call(
                kafka.get_watermark_offsets, TopicPartition(topic, partition), _KAFKA_TIMEOUT
            )
            marks[partition] = (low, high)
        if start.cursor is not None:
            return resolve_cursor(start.cursor, marks)
        if start.from_ms is not None:
            wanted = [TopicPartition(topic, p, start.from_ms) for p in marks]
            found = await consumer.call(kafka.offsets_for_times, wanted, _KAFKA_TIMEOUT)
            return {
                tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1]
                for tp in found
            }
        return {p: high for p, (_low, high) in marks.items()}
    except KafkaException as exc:
        raise unavailable(f"Kafka did not answer: {exc.args[0]}") from None


def _event_type(message: Message) -> str | None:
    return RecordHeaders.of(message).optional_text(HEADER_EVENT_TYPE)


def _hung_up(request: web.Request) -> bool:
    # aiohttp does not cancel a handler whose client left: look, so that a connection's
    # place and consumer are freed within a round rather than at the next heartbeat.
    transport = request.transport
    return transport is None or transport.is_closing()


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    consumer: AsyncConsumer,
    positions: Positions,
    accept: Callable[[str], bool],
    codec: AvroCodec,
    settings: Settings,
) -> None:
    """Write events until the deadline; each round consumes only after the last was written."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.events_max_connection.total_seconds()
    heartbeat = settings.events_heartbeat.total_seconds()
    stream_id = settings.events_api_stream_id  # named in every event, as deliveries do
    sent = encode_cursor(positions)
    await response.write(
        connected_frame() + retry_frame(RETRY_MILLISECONDS) + offset_only_frame(sent)
    )
    next_beat = loop.time() + heartbeat
    stopping = request.app[STOPPING]
    while (now := loop.time()) < deadline:
        if _hung_up(request):
            return
        if stopping.is_set():
            await _close(response, positions, sent, "the server is stopping")
            return
        wait = max(0.0, min(POLL_SECONDS, deadline - now, next_beat - now))
        frames = []
        for message in await consumer.consume(BATCH, wait):
            error = message.error()
            if error is not None:
                raise KafkaException(error)
            partition, offset = message.partition(), message.offset()
            assert partition is not None
            assert offset is not None
            positions[partition] = offset + 1
            event_type = _event_type(message)
            if event_type is None or not accept(event_type):
                continue
            try:
                body = render_record_json(codec.decode_record(message.value() or b""))
            except ContractError as exc:  # the dispatcher dead-letters these; skip them here
                log.warning("events_api_bad_record", offset=offset, reason=str(exc))
                continue
            sent = encode_cursor(positions)
            frames.append(event_frame(event_type, sent, with_stream(body, stream_id)))
        if frames:
            await response.write(b"".join(frames))
            next_beat = loop.time() + heartbeat
        elif loop.time() >= next_beat:
            current = encode_cursor(positions)
            await response.write(
                offset_only_frame(current) if current != sent else comment_frame("heartbeat")
            )
            sent, next_beat = current, loop.time() + heartbeat
    await _close(response, positions, sent, "the server closes connections after a while")


async def _close(response: web.StreamResponse, positions: Positions, sent: str, why: str) -> None:
    """End a stream the server cycles: the cursor of everything passed (as ``id``, for
    EventSource's ``Last-Event-ID``, and in the error's ``offset``), then Auth0's
    ``connection_timeout`` error."""
    current = encode_cursor(positions)
    if current != sent:
        await response.write(offset_only_frame(current))
    await response.write(
        error_frame(CONNECTION_TIMEOUT, f"{why}: reconnect with Last-Event-ID", current)
    )


async def stream_events(request: web.Request) -> web.StreamResponse:
    """The ``GET /v1/events`` handler."""
    state = request.app[STATE]
    settings = state.settings
    start = parse_request(request.query, request.headers.get("Last-Event-ID"))
    accept: Callable[[str], bool] = (
        SubscriptionFilter(start.patterns) if start.patterns else (lambda _type: True)
    )
    codec = state.codec
    if codec is None:
        raise unavailable("the admin API is starting")
    with request.app[LIMITER].hold(_token(request)):
        consumer = _consumer(settings)
        try:
            positions = await _start(consumer, settings.lifecycle_topic, start)
            await consumer.call(
                consumer.consumer.assign,
                [TopicPartition(settings.lifecycle_topic, p, o) for p, o in positions.items()],
            )
            response = web.StreamResponse(
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            )
            response.content_type = "text/event-stream"
            await response.prepare(request)
            try:
                await _pump(request, response, consumer, positions, accept, codec, settings)
            except ConnectionError:
                pass  # the client left while a write waited: nothing to tell anyone
            except KafkaException as exc:
                log.warning("events_api_kafka_error", error=str(exc))
                with contextlib.suppress(ConnectionError):
                    await response.write(
                        error_frame(
                            PROCESSING_ERROR,
                            "reading the lifecycle topic failed: reconnect with Last-Event-ID",
                        )
                    )
            return response
        finally:
            await consumer.close()


__all__ = ["EVENTS_PATH", "LIMITER", "OPENAPI_PATH_ITEM", "STOPPING", "install", "stream_events"]
