"""The stream: a subscription (event types) bound to a destination, with delivery settings.

This is the shape stored in the compacted registry topic and served by the admin API. Its
JSON follows Auth0's event stream object (``subscriptions: [{"event_type": ...}]``,
``destination: {"type", "configuration"}``); Tidings' additions sit in ``delivery`` and
``signing_secrets``. Secrets are :class:`~pydantic.SecretStr`: they serialize as ``None``
unless serialized with a :class:`~dispatcher.secret_box.SecretBox` in the context, and then
only encrypted (the registry record); API responses never carry them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    ValidationInfo,
    field_validator,
)

from dispatcher.http_fields import (
    basic_password_problem,
    basic_username_problem,
    field_name_problem,
    field_value_problem,
)
from dispatcher.secret_box import PREFIX as SECRET_PREFIX
from dispatcher.secret_box import SecretBox
from dispatcher.signing import validate_secret
from dispatcher.ssrf import parse_endpoint
from dispatcher.subscriptions import validate_pattern
from producer.durations import Duration
from schemas.ids import is_stream_id, new_stream_id


def _serialize_secret(value: SecretStr | None, info: SerializationInfo) -> str | None:
    box = (info.context or {}).get("box")
    if value is None or box is None:
        return None
    return str(box.encrypt(value.get_secret_value()))


def _decrypt_secret(value: object, info: ValidationInfo) -> object:
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        box = (info.context or {}).get("box")
        if box is None:
            raise ValueError("an encrypted secret can only be read with the secrets key")
        return box.decrypt(value)
    return value


#: A secret: write-only through the API; serialized only encrypted, for the registry.
Secret = Annotated[
    SecretStr,
    BeforeValidator(_decrypt_secret),
    PlainSerializer(_serialize_secret, return_type=str | None),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _plain(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


class _HeaderAuthorization(_Model):
    """An authorization sent in a request header: each field named in ``header_checks`` must
    pass its check (:mod:`dispatcher.http_fields`) when given through the API or a file.

    A record read back from the registry (``context={"stored": True}``) is taken as it is: a
    stream stored before a check existed must stay visible and fixable rather than vanish;
    the webhook client asks :meth:`header_problem` and refuses to send it instead.
    """

    header_checks: ClassVar[Mapping[str, Callable[[str], str | None]]] = {}

    @field_validator("*")
    @classmethod
    def _sendable(cls, value: object, info: ValidationInfo) -> object:
        check = cls.header_checks.get(info.field_name or "")
        if check is None or (info.context or {}).get("stored"):
            return value
        problem = check(_plain(value))
        if problem is not None:
            raise ValueError(problem)
        return value

    def header_problem(self) -> tuple[str, str] | None:
        """The first field that cannot be sent in a header, and why (never its value)."""
        for name, check in self.header_checks.items():
            problem = check(_plain(getattr(self, name)))
            if problem is not None:
                return name, problem
        return None


class BearerAuthorization(_HeaderAuthorization):
    """``Authorization: Bearer <token>``."""

    header_checks: ClassVar[Mapping[str, Callable[[str], str | None]]] = {
        "token": field_value_problem
    }

    method: Literal["bearer"] = "bearer"
    token: Secret = Field(min_length=1)


class BasicAuthorization(_HeaderAuthorization):
    """HTTP basic authorization."""

    header_checks: ClassVar[Mapping[str, Callable[[str], str | None]]] = {
        "username": basic_username_problem,
        "password": basic_password_problem,
    }

    method: Literal["basic"] = "basic"
    username: str = Field(min_length=1, max_length=256)
    password: Secret = Field(min_length=1)


#: Headers Tidings sets itself; a custom authorization header cannot replace them.
RESERVED_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


class CustomHeaderAuthorization(_HeaderAuthorization):
    """A header of the user's choosing, e.g. ``X-Api-Key: ...``."""

    header_checks: ClassVar[Mapping[str, Callable[[str], str | None]]] = {
        "header_key": field_name_problem,
        "header_value": field_value_problem,
    }

    method: Literal["custom_header"] = "custom_header"
    header_key: str = Field(min_length=1, max_length=256)
    header_value: Secret = Field(min_length=1)

    @field_validator("header_key")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in RESERVED_HEADERS:
            raise ValueError(f"{value} is set by Tidings and cannot be overridden")
        return value


Authorization = Annotated[
    BearerAuthorization | BasicAuthorization | CustomHeaderAuthorization,
    Field(discriminator="method"),
]


def _normalized_url(value: str, info: ValidationInfo) -> str:
    """An endpoint URL as the HTTP client reads it (:func:`dispatcher.ssrf.parse_endpoint`),
    so what is stored and shown is what is called. A stored record that no longer parses is
    kept as it is: the destination client refuses it, with the reason, at delivery."""
    try:
        return parse_endpoint(value).url
    except ValueError:
        if (info.context or {}).get("stored"):
            return value
        raise


class WebhookConfiguration(_Model):
    """Where and how to POST events."""

    webhook_endpoint: str = Field(max_length=2048)
    webhook_authorization: Authorization | None = None

    @field_validator("webhook_endpoint")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        return _normalized_url(value, info)


class WebhookDestination(_Model):
    """A webhook destination."""

    type: Literal["webhook"] = "webhook"
    configuration: WebhookConfiguration


class EventBridgeConfiguration(_Model):
    """An Amazon EventBridge bus; credentials come from the standard AWS chain."""

    aws_account_id: str = Field(pattern=r"^\d{12}$")
    aws_region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    event_bus_name: str = Field(min_length=1, max_length=1600)
    source: str | None = Field(None, min_length=1, max_length=256)
    endpoint_url: str | None = Field(
        None,
        max_length=2048,
        description="Another EventBridge endpoint (under the outbound policy, like webhooks).",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _normalized_url(value, info)


class EventBridgeDestination(_Model):
    """An EventBridge destination."""

    type: Literal["eventbridge"] = "eventbridge"
    configuration: EventBridgeConfiguration


Destination = Annotated[WebhookDestination | EventBridgeDestination, Field(discriminator="type")]


class Subscription(_Model):
    """One subscribed event type or wildcard (``user.*``)."""

    event_type: str

    @field_validator("event_type")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return validate_pattern(value)


#: How a stream orders its deliveries (see ``DeliverySettings.ordering``).
Ordering = Literal["none", "subject"]


class DeliverySettings(_Model):
    """How a stream delivers: Tidings' additions to Auth0's stream object."""

    timeout: Duration = Field(timedelta(seconds=10), description="Total time per attempt.")
    max_in_flight: int = Field(64, ge=1, le=1000, description="Concurrent deliveries.")
    retry_schedule: list[Duration] | None = Field(
        None,
        description="Overrides the global retry tiers: a subset of them, in order (the "
        "admin API checks each delay is a configured tier).",
    )
    start_position: Literal["now", "earliest"] | datetime = Field(
        "now",
        description="Where a new stream starts reading: its creation, the oldest "
        "retained event, or a timestamp (backfill).",
    )
    permanent_4xx: bool = Field(
        True, description="4xx other than 408/410/429 go straight to the dead-letter topic."
    )
    auto_disable_after: int = Field(
        500, ge=1, description="Consecutive failed attempts after which the stream disables."
    )
    ordering: Ordering = Field(
        "none",
        description="none: events are delivered concurrently and a failed one is retried "
        "while later ones go on. subject: at most one event per subject (the record key, "
        "e.g. the user id) is in flight and a subject's events arrive in the order they "
        "happened; a failing event holds back only its own subject's later events "
        "(webhook destinations only).",
    )

    @field_validator("timeout")
    @classmethod
    def _timeout_range(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(seconds=60):
            raise ValueError("must be between 100ms and 60s")
        return value


StreamStatus = Literal["enabled", "disabled"]


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Stream(_Model):
    """An event stream as stored in the registry."""

    id: str = Field(default_factory=new_stream_id)
    name: str = Field(min_length=1, max_length=128)
    subscriptions: list[Subscription] = Field(min_length=1)
    destination: Destination
    status: StreamStatus = "enabled"
    status_reason: str | None = None
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    signing_secrets: list[Secret] = Field(default_factory=list, max_length=5)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not is_stream_id(value):
            raise ValueError("must be 'est_' followed by 22 letters or digits")
        return value

    @field_validator("signing_secrets")
    @classmethod
    def _secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            validate_secret(secret.get_secret_value())
        return value

    @property
    def event_types(self) -> list[str]:
        """The subscribed patterns."""
        return [s.event_type for s in self.subscriptions]

    @property
    def enabled(self) -> bool:
        """True when the stream should be consuming."""
        return self.status == "enabled"

    def to_registry(self, box: SecretBox) -> bytes:
        """The registry record's value: JSON with every secret encrypted by ``box``."""
        return self.model_dump_json(context={"box": box}).encode()

    @classmethod
    def from_registry(cls, value: bytes, box: SecretBox) -> Stream:
        """Parse a registry record's value, decrypting its secrets with ``box``."""
        return cls.model_validate_json(value, context={"box": box, "stored": True})

    def public(self) -> dict[str, Any]:
        """The JSON an API response shows: every secret left out."""
        return self.model_dump(mode="json", exclude_none=True)
