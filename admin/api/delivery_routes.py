"""A stream's deliveries: history, redelivery, test events and stats.

History lists one item per event (its latest status) with success and retrying shown as
well as failed; filters select by latest status, event type (wildcards allowed) and the
time of the event's first attempt, which is also the sort key (newest first), so paging
stays stable while attempts are added. Redelivery and test events answer 202 once the job
is in the first retry tier; the dispatcher delivers it from there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Final

import orjson
import structlog
from confluent_kafka import KafkaException

from admin.api import stats
from admin.api.errors import conflict, invalid, not_found, unavailable
from admin.api.models import (
    AttemptOut,
    DeadLetterOut,
    DeliveriesQuery,
    DeliveryDetail,
    DeliveryList,
    DeliverySummary,
    EventAccepted,
    RedeliverAccepted,
    RedeliverRequest,
    Stats,
    StatsBucket,
    StatsQuery,
    StatsTotals,
    TestEventRequest,
)
from admin.api.paging import BadCursor, decode_cursor, encode_cursor
from admin.api.routing import Input, Reply, Route
from admin.api.state import AdminState
from admin.history.model import EventHistory, HistoryFilter
from dispatcher.jobs import Job
from dispatcher.streams import Stream
from producer.producer import subject_key
from schemas.errors import ContractError, EventValidationError
from schemas.models import make_event
from schemas.samples import sample_object

log = structlog.get_logger(__name__)

BASE: Final = "/v1/event-streams/{id}"


def _window(date_from: datetime | None, date_to: datetime | None) -> None:
    if date_from is not None and date_to is not None and date_from >= date_to:
        raise invalid("date_to", "must be after date_from")


def _summary(event: EventHistory) -> DeliverySummary:
    latest = event.latest
    return DeliverySummary(
        event_id=event.event_id,
        event_type=event.event_type,
        status=event.status,
        attempts=len(event.attempts),
        first_attempt_at=event.first_at,
        last_attempt_at=event.last_at,
        last_http_status=latest.http_status
        if latest
        else (event.dead_letter and event.dead_letter.http_status),
        last_error=latest.error if latest else (event.dead_letter and event.dead_letter.reason),
        next_attempt_at=latest.next_attempt_at if latest and latest.status == "retrying" else None,
        purpose=event.purpose,
    )


async def list_deliveries(call: Input) -> Reply:
    """The stream's delivery history, one item per event."""
    query: DeliveriesQuery = call.query
    call.state.stream(call.path("id"))
    _window(query.date_from, query.date_to)
    selected = HistoryFilter(
        statuses=frozenset(query.statuses) if query.statuses else None,
        event_types=query.event_types,
        date_from=query.date_from,
        date_to=query.date_to,
    )
    try:
        before = decode_cursor(query.from_) if query.from_ is not None else None
    except BadCursor as exc:
        raise invalid("from", str(exc)) from None
    history = call.state.ready_history()
    events = await asyncio.to_thread(
        history.events, call.path("id"), selected, before=before, limit=query.take + 1
    )
    page, more = events[: query.take], len(events) > query.take
    cursor = encode_cursor((page[-1].first_at, page[-1].event_id)) if more else None
    return Reply(200, DeliveryList(deliveries=[_summary(e) for e in page], next=cursor))


async def get_delivery(call: Input) -> Reply:
    """Every attempt of one event, and the event as delivered while Kafka retains it."""
    stream_id, event_id = call.path("id"), call.path("event_id")
    call.state.stream(stream_id)
    history = call.state.ready_history()
    event = await asyncio.to_thread(history.get, stream_id, event_id)
    if event is None:
        raise not_found(f"no delivery of {event_id!r} to this stream")
    assert call.state.requeuer is not None
    try:
        sent = await call.state.requeuer.delivered_body(event)
    except KafkaException as exc:
        log.warning("delivered_event_unreadable", event_id=event_id, error=str(exc))
        sent = None
    letter = event.dead_letter
    return Reply(
        200,
        DeliveryDetail(
            event_id=event.event_id,
            event_type=event.event_type,
            stream_id=stream_id,
            status=event.status,
            purpose=event.purpose,
            event_time=next((r.event_time for r in event.attempts if r.event_time), None),
            attempts=[
                AttemptOut(
                    attempt=r.attempt,
                    status=r.status,
                    at=r.at,
                    http_status=r.http_status,
                    error=r.error,
                    duration_ms=r.duration_ms,
                    next_attempt_at=r.next_attempt_at,
                    response_body=r.response_body,
                )
                for r in event.attempts
            ],
            event=orjson.loads(sent) if sent is not None else None,
            dead_letter=DeadLetterOut(reason=letter.reason, at=letter.at) if letter else None,
        ),
    )


def _enabled(state: AdminState, stream_id: str) -> Stream:
    stream = state.stream(stream_id)
    if not stream.enabled:
        raise conflict("stream_disabled", "the stream is disabled: enable it first")
    return stream


async def _redeliver(state: AdminState, events: list[EventHistory]) -> list[EventHistory]:
    assert state.requeuer is not None
    try:
        return await state.requeuer.redeliver(events)
    except KafkaException as exc:
        log.warning("redeliver_failed", error=str(exc))
        raise unavailable("Kafka did not accept the redelivery; retry shortly") from None


async def redeliver(call: Input) -> Reply:
    """Redeliver the stream's events that match (every failed one without a filter)."""
    body: RedeliverRequest = call.body
    stream = _enabled(call.state, call.path("id"))
    _window(body.date_from, body.date_to)
    selected = HistoryFilter(
        statuses=frozenset(body.statuses or ["failed"]),
        event_types=body.event_types,
        date_from=body.date_from,
        date_to=body.date_to,
    )
    events = await asyncio.to_thread(call.state.ready_history().events, stream.id, selected)
    expired = await _redeliver(call.state, events)
    log.info("redeliver", stream_id=stream.id, count=len(events) - len(expired))
    return Reply(202, RedeliverAccepted(count=len(events) - len(expired), skipped=len(expired)))


async def redeliver_event(call: Input) -> Reply:
    """Redeliver one event; 409 when Kafka no longer holds it or the stream never had it."""
    stream = _enabled(call.state, call.path("id"))
    event_id = call.path("event_id")
    event = await asyncio.to_thread(call.state.ready_history().get, stream.id, event_id)
    if event is None:
        raise conflict("not_redeliverable", f"{event_id!r} was never delivered to this stream")
    if await _redeliver(call.state, [event]):
        raise conflict("not_redeliverable", f"{event_id!r} is no longer retained by Kafka")
    return Reply(202, EventAccepted(event_id=event_id))


async def send_test_event(call: Input) -> Reply:
    """Send a test event (``a0purpose: "test"``) to this stream only."""
    body: TestEventRequest = call.body
    state = call.state
    stream = _enabled(state, call.path("id"))
    data = body.data if body.data is not None else sample_object(body.event_type)
    try:
        event = make_event(body.event_type, data, tenant=state.settings.tenant, purpose="test")
        assert state.codec is not None
        value = await asyncio.to_thread(state.codec.encode, event)
    except EventValidationError as exc:
        error = exc.errors[0]
        path = error.path.removeprefix("data.object").lstrip(".")
        raise invalid(f"data.{path}" if path else "data", error.message) from None
    except ContractError as exc:
        raise invalid("data", str(exc)) from None
    if len(value) > state.settings.max_event_bytes:
        raise invalid("data", f"the encoded event is over {state.settings.max_event_bytes} bytes")
    job = Job(
        stream_id=stream.id,
        event_id=event.id,
        event_type=event.type,
        value=value,
        key=subject_key(event).encode(),
        purpose="test",
    )
    assert state.requeuer is not None
    try:
        await state.requeuer.enqueue(job)
    except KafkaException:
        raise unavailable("Kafka did not accept the test event; retry shortly") from None
    return Reply(202, EventAccepted(event_id=event.id))


async def get_stats(call: Input) -> Reply:
    """Successful and failed attempts in time buckets."""
    query: StatsQuery = call.query
    stream = call.state.stream(call.path("id"))
    end = query.date_to or datetime.now(UTC)
    start = query.date_from or end - stats.DEFAULT_WINDOW
    _window(start, end)
    size = query.bucket or stats.default_bucket(end - start)
    if not stats.MIN_BUCKET <= size <= stats.MAX_BUCKET:
        raise invalid("bucket", "must be between 1s and 1d")
    if size.total_seconds() != int(size.total_seconds()):
        raise invalid("bucket", "must be a whole number of seconds")
    if stats.bucket_count(start, end, size) > stats.MAX_BUCKETS:
        raise invalid("bucket", f"too small for the window: at most {stats.MAX_BUCKETS} buckets")
    history = call.state.ready_history()
    counters = []
    for first, last, minutes in stats.counter_spans(start, end, size):
        counters += await asyncio.to_thread(
            history.counters, stream.id, first, last, minutes=minutes
        )
    rows = stats.tally(counters, start, end, size)
    buckets = [StatsBucket(start=when, successful=ok, failed=bad) for when, ok, bad in rows]
    totals = StatsTotals(
        successful=sum(b.successful for b in buckets), failed=sum(b.failed for b in buckets)
    )
    return Reply(
        200,
        Stats(date_from=start, date_to=end, bucket=size, buckets=buckets, totals=totals),
    )


ROUTES: Final = (
    Route(
        "GET",
        f"{BASE}/deliveries",
        list_deliveries,
        "List an event stream's deliveries",
        200,
        DeliveryList,
        query=DeliveriesQuery,
        errors=(404,),
    ),
    Route(
        "GET",
        f"{BASE}/deliveries/{{event_id}}",
        get_delivery,
        "Get every attempt of one event",
        200,
        DeliveryDetail,
        errors=(404,),
    ),
    Route(
        "POST",
        f"{BASE}/redeliver",
        redeliver,
        "Redeliver events by filter (every failed event without one)",
        202,
        RedeliverAccepted,
        body=RedeliverRequest,
        body_optional=True,
        errors=(404, 409),
    ),
    Route(
        "POST",
        f"{BASE}/redeliver/{{event_id}}",
        redeliver_event,
        "Redeliver one event",
        202,
        EventAccepted,
        errors=(404, 409),
    ),
    Route(
        "POST",
        f"{BASE}/test",
        send_test_event,
        "Send a test event",
        202,
        EventAccepted,
        body=TestEventRequest,
        errors=(404, 409),
    ),
    Route(
        "GET",
        f"{BASE}/stats",
        get_stats,
        "Delivery stats in time buckets",
        200,
        Stats,
        query=StatsQuery,
        errors=(404,),
    ),
)
