"""The admin API's request, query and response models.

Request bodies for streams are derived from :class:`~dispatcher.streams.Stream`'s own
fields, so every constraint (name length, subscription patterns, destination shapes) has
one home. Responses are separate models with no place for a secret: a stream is rendered
through :class:`StreamOut`, which can hold a webhook's username or header name but never a
token, password, header value or signing secret. The OpenAPI document is generated from
these models.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
)

from dispatcher.delivery_log import AttemptStatus
from dispatcher.streams import (
    BasicAuthorization,
    BearerAuthorization,
    DeliverySettings,
    EventBridgeDestination,
    Stream,
    StreamStatus,
    Subscription,
)
from dispatcher.subscriptions import validate_pattern
from producer.durations import Duration
from schemas.constants import EVENT_TYPES


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# requests ----------------------------------------------------------------------------------
#: Stream fields a client may write; id, timestamps and status_reason are Tidings'.
WRITABLE_FIELDS: Final = (
    "name",
    "subscriptions",
    "destination",
    "status",
    "delivery",
    "signing_secrets",
)


def _stream_fields(*, optional: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in WRITABLE_FIELDS:
        info = copy.copy(Stream.model_fields[name])
        if optional:
            # Absent means "keep"; an explicit null still fails the field's own type.
            info.default = None
            info.default_factory = None
        fields[name] = (info.annotation, info)
    return fields


#: ``POST /v1/event-streams``: Stream's writable fields with Stream's constraints.
StreamCreate: type[BaseModel] = create_model(
    "StreamCreate", __config__=ConfigDict(extra="forbid"), **_stream_fields(optional=False)
)
#: ``PATCH /v1/event-streams/{id}``: the same fields, every one optional.
StreamPatch: type[BaseModel] = create_model(
    "StreamPatch", __config__=ConfigDict(extra="forbid"), **_stream_fields(optional=True)
)
StreamPatch.__doc__ = (
    "Fields given replace the stored ones; `delivery` is merged key by key. `destination` is "
    "replaced as a whole, so its secrets must be given again."
)


def _split(value: object) -> object:
    """Query lists are comma-separated: ``statuses=failed,retrying``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _aware(value: datetime) -> datetime:
    """Times without an offset are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Instant = Annotated[datetime, AfterValidator(_aware)]
Pattern = Annotated[str, AfterValidator(validate_pattern)]
Statuses = Annotated[list[AttemptStatus], Field(min_length=1)]
Patterns = Annotated[list[Pattern], Field(min_length=1, max_length=50)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class RedeliverRequest(_Input):
    """Which of the stream's events to redeliver; no filter means every failed event."""

    date_from: Instant | None = Field(None, description="First attempt at or after this time.")
    date_to: Instant | None = Field(None, description="First attempt before this time.")
    statuses: Statuses | None = Field(
        None, description="Latest status of the event (default: failed)."
    )
    event_types: Patterns | None = Field(None, description="Event types or wildcards.")


class TestEventRequest(_Input):
    """A test event: its type and optionally ``data.object`` (a sample otherwise)."""

    event_type: EventType
    data: dict[str, Any] | None = Field(
        None, description="The event's data.object; a realistic sample when absent."
    )


# queries -----------------------------------------------------------------------------------
class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class PageQuery(_Query):
    """Paging: ``from`` is the ``next`` cursor of the previous page."""

    from_: str | None = Field(None, alias="from", description="Cursor from a previous page.")
    take: int = Field(50, ge=1, le=100, description="Items per page (1-100).")


class DeliveriesQuery(PageQuery):
    """Filters of the delivery history."""

    statuses: Annotated[Statuses | None, BeforeValidator(_split)] = Field(
        None, description="Comma-separated latest statuses: failed, retrying, success."
    )
    event_types: Annotated[Patterns | None, BeforeValidator(_split)] = Field(
        None, description="Comma-separated event types or wildcards."
    )
    date_from: Instant | None = Field(None, description="First attempt at or after (RFC 3339).")
    date_to: Instant | None = Field(None, description="First attempt before (RFC 3339).")


class StatsQuery(_Query):
    """The stats window and bucket size."""

    date_from: Instant | None = Field(None, description="Window start (default: 24h before end).")
    date_to: Instant | None = Field(None, description="Window end (default: now).")
    bucket: Duration | None = Field(
        None, description="Bucket size, e.g. 1m, 5m, 1h (default: chosen by the window)."
    )


# responses ---------------------------------------------------------------------------------
class BearerOut(_Output):
    """A bearer token is configured (the token itself is write-only)."""

    method: Literal["bearer"] = "bearer"


class BasicOut(_Output):
    """Basic authorization is configured (the password is write-only)."""

    method: Literal["basic"] = "basic"
    username: str


class CustomHeaderOut(_Output):
    """A custom header is configured (its value is write-only)."""

    method: Literal["custom_header"] = "custom_header"
    header_key: str


class WebhookConfigurationOut(_Output):
    """A webhook's endpoint and authorization method, without secrets."""

    webhook_endpoint: str
    webhook_authorization: BearerOut | BasicOut | CustomHeaderOut | None = None


class WebhookDestinationOut(_Output):
    """A webhook destination, without secrets."""

    type: Literal["webhook"] = "webhook"
    configuration: WebhookConfigurationOut


class StreamOut(_Output):
    """An event stream as the API shows it: Auth0's fields plus Tidings' additions."""

    id: str
    name: str
    subscriptions: list[Subscription]
    destination: WebhookDestinationOut | EventBridgeDestination
    status: StreamStatus
    status_reason: str | None = None
    delivery: DeliverySettings
    signing_secrets_count: int = Field(description="Signing secrets are write-only.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, stream: Stream) -> StreamOut:
        """Render a stream, leaving every secret out."""
        destination: WebhookDestinationOut | EventBridgeDestination
        if stream.destination.type == "webhook":
            config = stream.destination.configuration
            auth = config.webhook_authorization
            auth_out: BearerOut | BasicOut | CustomHeaderOut | None
            if auth is None:
                auth_out = None
            elif isinstance(auth, BearerAuthorization):
                auth_out = BearerOut()
            elif isinstance(auth, BasicAuthorization):
                auth_out = BasicOut(username=auth.username)
            else:
                auth_out = CustomHeaderOut(header_key=auth.header_key)
            destination = WebhookDestinationOut(
                configuration=WebhookConfigurationOut(
                    webhook_endpoint=config.webhook_endpoint, webhook_authorization=auth_out
                )
            )
        else:
            destination = stream.destination
        return cls(
            id=stream.id,
            name=stream.name,
            subscriptions=stream.subscriptions,
            destination=destination,
            status=stream.status,
            status_reason=stream.status_reason,
            delivery=stream.delivery,
            signing_secrets_count=len(stream.signing_secrets),
            created_at=stream.created_at,
            updated_at=stream.updated_at,
        )


class StreamList(_Output):
    """One page of streams, oldest first."""

    event_streams: list[StreamOut]
    next: str | None = Field(None, description="Pass as `from` for the next page.")


class DeliverySummary(_Output):
    """One event's delivery to the stream: its latest status and attempt counts."""

    event_id: str
    event_type: str
    status: AttemptStatus
    attempts: int
    first_attempt_at: datetime
    last_attempt_at: datetime
    last_http_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    purpose: str | None = None


class DeliveryList(_Output):
    """One page of the delivery history, newest first attempt first."""

    deliveries: list[DeliverySummary]
    next: str | None = Field(None, description="Pass as `from` for the next page.")


class AttemptOut(_Output):
    """One attempt."""

    attempt: int
    status: AttemptStatus
    at: datetime
    http_status: int | None = None
    error: str | None = None
    duration_ms: float
    next_attempt_at: datetime | None = None
    response_body: str | None = Field(
        None, description="The first KB of the receiver's answer to a failed attempt."
    )


class DeadLetterOut(_Output):
    """The event's record in the dead-letter topic."""

    reason: str | None = None
    at: datetime


class DeliveryDetail(_Output):
    """Every attempt of one event for one stream."""

    event_id: str
    event_type: str
    stream_id: str
    status: AttemptStatus
    purpose: str | None = None
    event_time: datetime | None = None
    attempts: list[AttemptOut]
    dead_letter: DeadLetterOut | None = None
    event: dict[str, Any] | None = Field(
        None,
        description="The event's JSON as delivered to this stream, while Kafka retains it.",
    )


class RedeliverAccepted(_Output):
    """Events re-enqueued by a bulk redelivery."""

    count: int = Field(description="Events enqueued for redelivery.")
    skipped: int = Field(description="Matching events no longer retained in Kafka.")


class EventAccepted(_Output):
    """An event enqueued for (re)delivery."""

    event_id: str


class StatsBucket(_Output):
    """Attempts in one bucket ``[start, start + bucket)``."""

    start: datetime
    successful: int
    failed: int = Field(description="Failed attempts, whether retried later or not.")


class StatsTotals(_Output):
    """Attempts in the whole window."""

    successful: int
    failed: int


class Stats(_Output):
    """Successful and failed delivery attempts in time buckets."""

    date_from: datetime
    date_to: datetime
    bucket: Duration
    buckets: list[StatsBucket]
    totals: StatsTotals


class Health(_Output):
    """Liveness or readiness."""

    status: Literal["ok", "starting", "unavailable"]
    kafka: bool | None = None
    caught_up: bool | None = None


class ErrorOut(_Output):
    """Every error: a stable code, a message, and the offending field (dotted path)."""

    code: str
    message: str
    field: str | None


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(frozen=True)

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
