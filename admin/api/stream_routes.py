"""``/v1/event-streams``: list, create, get, patch and delete streams.

Writes go to the registry topic through :class:`~dispatcher.registry.RegistryWriter`; the
answer is rendered from the written object, and the view shows it at once
(read-your-writes). PATCH replaces each top-level field given, except ``delivery``, whose
keys are merged into the stored settings; ``destination`` is replaced as a whole, so a
PATCH of it must carry its secrets again (the API never returns them, so a client could
not send back what it cannot read). Changing ``status`` clears ``status_reason``.
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from confluent_kafka import KafkaException
from pydantic import BaseModel, ValidationError

from admin.api.errors import conflict, from_validation, invalid, unavailable
from admin.api.models import (
    WRITABLE_FIELDS,
    PageQuery,
    StreamCreate,
    StreamList,
    StreamOut,
    StreamPatch,
)
from admin.api.paging import BadCursor, paginate
from admin.api.routing import Input, Reply, Route
from admin.api.state import AdminState
from dispatcher.ssrf import DestinationRefusedError, NameNotResolvingError, ResolverUnavailableError
from dispatcher.streams import Stream, WebhookConfiguration
from producer.durations import format_duration

log = structlog.get_logger(__name__)

COLLECTION: Final = "/v1/event-streams"
ITEM: Final = "/v1/event-streams/{id}"


def _fields(model: BaseModel) -> dict[str, Any]:
    """The fields a client gave, as validated objects (secrets stay SecretStr)."""
    return {name: getattr(model, name) for name in model.model_fields_set}


def _check_schedule(state: AdminState, stream: Stream) -> None:
    """A stream's retry delays must be tiers the installation runs (each is a topic)."""
    schedule = stream.delivery.retry_schedule
    if schedule is None:
        return
    tiers = set(state.settings.retry_schedule)
    for index, delay in enumerate(schedule):
        if delay not in tiers:
            allowed = ", ".join(format_duration(t) for t in state.settings.retry_schedule)
            raise invalid(
                f"delivery.retry_schedule.{index}",
                f"{format_duration(delay)} is not a retry tier; the tiers are {allowed}",
            )


def _check_ordering(stream: Stream) -> None:
    """Ordered delivery is offered where an order can reach the receiver: EventBridge routes
    the events it accepts to its targets with no order of its own, so sending them in order
    would cost a subject's concurrency and promise nothing."""
    if stream.delivery.ordering != "none" and stream.destination.type == "eventbridge":
        raise invalid(
            "delivery.ordering",
            "'subject' is offered for webhook destinations only: EventBridge does not keep "
            "the order of the events it routes to its targets",
        )


def _endpoint(stream: Stream) -> tuple[str, str] | None:
    """The URL a stream calls that is under the outbound policy, and its field path."""
    config = stream.destination.configuration
    if isinstance(config, WebhookConfiguration):
        return "destination.configuration.webhook_endpoint", config.webhook_endpoint
    if config.endpoint_url is not None:
        return "destination.configuration.endpoint_url", config.endpoint_url
    return None  # AWS's own endpoint for the region


async def _check_destination(state: AdminState, stream: Stream) -> None:
    """Refuse endpoints the outbound policy forbids (plain http, private addresses, names
    resolving to them) now, rather than as permanent delivery failures later.

    A name that does not resolve (yet) is refused for an enabled stream, since every
    delivery would fail; a disabled stream may be prepared before its DNS record exists,
    and is checked again when it is enabled."""
    endpoint = _endpoint(stream)
    if endpoint is None:
        return
    field, url = endpoint
    try:
        await state.policy.check_endpoint(url)
    except NameNotResolvingError as exc:
        if stream.enabled:
            raise invalid(
                field,
                f"{exc}: create the DNS record first, or create the stream with "
                '"status": "disabled" and enable it once the name resolves',
            ) from None
    except DestinationRefusedError as exc:
        raise invalid(field, str(exc)) from None
    except ResolverUnavailableError as exc:
        raise unavailable(f"{exc}; retry shortly") from None


def _validated(data: dict[str, Any]) -> Stream:
    try:
        return Stream.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


async def _write(state: AdminState, stream: Stream) -> Stream:
    """Store the stream and show it in the view; the stored form is returned."""
    assert state.writer is not None
    table = state.view.table
    table.begin_write(stream.id)
    try:
        _written, value = await state.writer.aput_record(stream)
    except (KafkaException, RuntimeError) as exc:
        table.abort_write(stream.id)
        log.warning("registry_write_failed", stream_id=stream.id, error=str(exc))
        raise unavailable("Kafka did not accept the write; retry shortly") from None
    table.end_write(stream.id, value)
    return Stream.from_registry(value, state.writer.box)


async def list_event_streams(call: Input) -> Reply:
    """Streams, oldest first."""
    query: PageQuery = call.query
    streams = list(call.state.ready_view().table.streams.values())
    try:
        page = paginate(streams, lambda s: (s.created_at, s.id), after=query.from_, take=query.take)
    except BadCursor as exc:
        raise invalid("from", str(exc)) from None
    return Reply(
        200, StreamList(event_streams=[StreamOut.of(s) for s in page.items], next=page.next)
    )


async def create_event_stream(call: Input) -> Reply:
    """Create a stream (201)."""
    state = call.state
    view = state.ready_view()
    stream = _validated(_fields(call.body))
    _check_schedule(state, stream)
    _check_ordering(stream)
    await _check_destination(state, stream)
    async with state.write_lock:
        if len(view.table) >= state.max_streams:
            raise conflict(
                "too_many_streams", f"an installation holds at most {state.max_streams} streams"
            )
        stored = await _write(state, stream)
    log.info("stream_created", stream_id=stored.id)
    return Reply(201, StreamOut.of(stored))


async def get_event_stream(call: Input) -> Reply:
    """One stream."""
    return Reply(200, StreamOut.of(call.state.stream(call.path("id"))))


async def patch_event_stream(call: Input) -> Reply:
    """Change a stream (see the module docstring for the merge rules)."""
    state = call.state
    changes = _fields(call.body)
    if not changes:
        raise invalid(None, f"give at least one of: {', '.join(WRITABLE_FIELDS)}")
    async with state.write_lock:
        current = state.stream(call.path("id"))
        data = {name: getattr(current, name) for name in type(current).model_fields}
        if "delivery" in changes:
            given = changes.pop("delivery")
            merged = {k: getattr(current.delivery, k) for k in type(current.delivery).model_fields}
            merged.update({k: getattr(given, k) for k in given.model_fields_set})
            data["delivery"] = merged
        if "status" in changes and changes["status"] != current.status:
            data["status_reason"] = None
        data.update(changes)
        stream = _validated(data)
        _check_schedule(state, stream)
        _check_ordering(stream)
        if "destination" in changes or (stream.enabled and not current.enabled):
            await _check_destination(state, stream)
        stored = await _write(state, stream)
    log.info("stream_updated", stream_id=stored.id, fields=sorted(call.body.model_fields_set))
    return Reply(200, StreamOut.of(stored))


async def delete_event_stream(call: Input) -> Reply:
    """Delete a stream (204); its consumer stops, its retries are dropped."""
    state = call.state
    assert state.writer is not None
    async with state.write_lock:
        stream = state.stream(call.path("id"))
        table = state.view.table
        table.begin_write(stream.id)
        try:
            await state.writer.adelete(stream.id)
        except (KafkaException, RuntimeError):
            table.abort_write(stream.id)
            raise unavailable("Kafka did not accept the write; retry shortly") from None
        table.end_write(stream.id, None)
    log.info("stream_deleted", stream_id=stream.id)
    return Reply(204)


ROUTES: Final = (
    Route(
        "GET",
        COLLECTION,
        list_event_streams,
        "List event streams",
        200,
        StreamList,
        query=PageQuery,
    ),
    Route(
        "POST",
        COLLECTION,
        create_event_stream,
        "Create an event stream",
        201,
        StreamOut,
        body=StreamCreate,
        errors=(409,),
    ),
    Route("GET", ITEM, get_event_stream, "Get an event stream", 200, StreamOut, errors=(404,)),
    Route(
        "PATCH",
        ITEM,
        patch_event_stream,
        "Update an event stream",
        200,
        StreamOut,
        body=StreamPatch,
        errors=(404,),
    ),
    Route("DELETE", ITEM, delete_event_stream, "Delete an event stream", 204, errors=(404,)),
)
