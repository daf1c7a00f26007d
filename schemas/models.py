"""Lifecycle events as pydantic models: the envelope, one class per event type, and a factory.

:class:`LifecycleEvent` is the envelope every event shares. Each event type has its own
subclass that fixes ``type`` and the entity class of ``data.object``, so
``LifecycleEvent.model_validate(...)`` (or :func:`parse_event`) returns the subclass matching
``type`` and validates the object as that entity, with error paths like
``data.object.user_id``. The stream id is not part of the event: it is added at delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Generic, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from schemas.entities import (
    AVRO_CONTEXT,
    AnyEntity,
    Branding,
    BrandingColors,
    Context,
    ContextClient,
    ContextConnection,
    ContextRequest,
    ContextTenant,
    DeletedUser,
    Geo,
    Identity,
    Organization,
    OrganizationMember,
    OrganizationMemberRole,
    OrganizationRef,
    RoleRef,
    User,
    UserRef,
)
from schemas.errors import EventValidationError
from schemas.ids import is_event_id, new_event_id
from schemas.timestamps import Timestamp, utc_now

__all__ = [
    "AVRO_CONTEXT",
    "EVENT_CLASSES",
    "AnyEntity",
    "Branding",
    "BrandingColors",
    "ChangeData",
    "Context",
    "ContextClient",
    "ContextConnection",
    "ContextRequest",
    "ContextTenant",
    "DeletedUser",
    "EventData",
    "EventType",
    "Geo",
    "Identity",
    "LifecycleEvent",
    "Organization",
    "OrganizationCreatedEvent",
    "OrganizationDeletedEvent",
    "OrganizationMember",
    "OrganizationMemberAddedEvent",
    "OrganizationMemberDeletedEvent",
    "OrganizationMemberRole",
    "OrganizationMemberRoleAssignedEvent",
    "OrganizationMemberRoleDeletedEvent",
    "OrganizationRef",
    "OrganizationUpdatedEvent",
    "RoleRef",
    "User",
    "UserCreatedEvent",
    "UserDeletedEvent",
    "UserRef",
    "UserUpdatedEvent",
    "make_event",
    "parse_event",
]

EventType = Literal[
    "user.created",
    "user.updated",
    "user.deleted",
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organization.member.added",
    "organization.member.deleted",
    "organization.member.role.assigned",
    "organization.member.role.deleted",
]

ObjectT = TypeVar("ObjectT", bound=BaseModel)

_STRICT: Final = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_event_id(value: str) -> str:
    if not is_event_id(value):
        raise ValueError("must be 'evt_' followed by 22 base62 characters")
    return value


EventId = Annotated[str, AfterValidator(_check_event_id)]


class EventData(BaseModel, Generic[ObjectT]):
    """``data`` of an event: the entity, and optionally where the change came from."""

    model_config = _STRICT

    object: ObjectT
    context: Context | None = None


class ChangeData(EventData[ObjectT], Generic[ObjectT]):
    """``data`` of an ``*.updated`` event, which may also carry the entity before the change."""

    previous_object: ObjectT | None = None


class LifecycleEvent(BaseModel):
    """The envelope of every lifecycle event (CloudEvents 1.0 attributes plus ``data``).

    Validating through this class returns the subclass for the event's ``type``.
    """

    model_config = _STRICT

    specversion: Literal["1.0"] = "1.0"
    type: EventType
    source: Annotated[str, Field(min_length=1)]
    id: EventId
    time: Timestamp
    tenant: Annotated[str, Field(min_length=1)]
    data: EventData[Any]
    #: ``"test"`` on test events (rendered as ``a0purpose``), else ``None``.
    purpose: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_type(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if cls is LifecycleEvent and not isinstance(value, LifecycleEvent):
            return _EVENT_ADAPTER.validate_python(value)
        return handler(value)


class UserCreatedEvent(LifecycleEvent):
    """user.created"""

    type: Literal["user.created"] = "user.created"
    data: EventData[User]


class UserUpdatedEvent(LifecycleEvent):
    """user.updated"""

    type: Literal["user.updated"] = "user.updated"
    data: ChangeData[User]


class UserDeletedEvent(LifecycleEvent):
    """user.deleted"""

    type: Literal["user.deleted"] = "user.deleted"
    data: EventData[DeletedUser]


class OrganizationCreatedEvent(LifecycleEvent):
    """organization.created"""

    type: Literal["organization.created"] = "organization.created"
    data: EventData[Organization]


class OrganizationUpdatedEvent(LifecycleEvent):
    """organization.updated"""

    type: Literal["organization.updated"] = "organization.updated"
    data: ChangeData[Organization]


class OrganizationDeletedEvent(LifecycleEvent):
    """organization.deleted"""

    type: Literal["organization.deleted"] = "organization.deleted"
    data: EventData[Organization]


class OrganizationMemberAddedEvent(LifecycleEvent):
    """organization.member.added"""

    type: Literal["organization.member.added"] = "organization.member.added"
    data: EventData[OrganizationMember]


class OrganizationMemberDeletedEvent(LifecycleEvent):
    """organization.member.deleted"""

    type: Literal["organization.member.deleted"] = "organization.member.deleted"
    data: EventData[OrganizationMember]


class OrganizationMemberRoleAssignedEvent(LifecycleEvent):
    """organization.member.role.assigned"""

    type: Literal["organization.member.role.assigned"] = "organization.member.role.assigned"
    data: EventData[OrganizationMemberRole]


class OrganizationMemberRoleDeletedEvent(LifecycleEvent):
    """organization.member.role.deleted"""

    type: Literal["organization.member.role.deleted"] = "organization.member.role.deleted"
    data: EventData[OrganizationMemberRole]


_AnyEvent = Annotated[
    UserCreatedEvent
    | UserUpdatedEvent
    | UserDeletedEvent
    | OrganizationCreatedEvent
    | OrganizationUpdatedEvent
    | OrganizationDeletedEvent
    | OrganizationMemberAddedEvent
    | OrganizationMemberDeletedEvent
    | OrganizationMemberRoleAssignedEvent
    | OrganizationMemberRoleDeletedEvent,
    Field(discriminator="type"),
]
_EVENT_ADAPTER: Final[TypeAdapter[LifecycleEvent]] = TypeAdapter(_AnyEvent)

#: The model class of each event type.
EVENT_CLASSES: Final[Mapping[str, type[LifecycleEvent]]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in get_args(get_args(_AnyEvent)[0])
}


def parse_event(
    value: Mapping[str, Any], *, context: Mapping[str, Any] | None = None
) -> LifecycleEvent:
    """Validate an event given as a mapping, raising :class:`EventValidationError` if invalid.

    ``context=AVRO_CONTEXT`` reads free-form maps from their Avro (JSON string) form.
    """
    try:
        return _EVENT_ADAPTER.validate_python(value, context=context)
    except ValidationError as exc:
        label = value.get("type") if isinstance(value.get("type"), str) else "event"
        raise EventValidationError.from_pydantic(exc, context=f"invalid {label}") from exc


def _as_mapping(value: BaseModel | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True)
    return value


def make_event(
    event_type: str,
    obj: BaseModel | Mapping[str, Any],
    previous: BaseModel | Mapping[str, Any] | None = None,
    context: Context | Mapping[str, Any] | None = None,
    *,
    tenant: str,
    source: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    purpose: str | None = None,
) -> LifecycleEvent:
    """Build and validate an event of ``event_type`` around ``obj`` (its ``data.object``).

    A fresh ``evt_`` id and the current time (milliseconds, UTC) are used unless given; the
    source defaults to ``urn:tidings:<tenant>``. ``previous`` is accepted only by
    ``*.updated`` types. Raises :class:`EventValidationError` naming each bad field.
    """
    data: dict[str, Any] = {"object": _as_mapping(obj)}
    if previous is not None:
        data["previous_object"] = _as_mapping(previous)
    if context is not None:
        data["context"] = _as_mapping(context)
    return parse_event(
        {
            "type": event_type,
            "source": source if source is not None else f"urn:tidings:{tenant}",
            "id": event_id if event_id is not None else new_event_id(),
            "time": time if time is not None else utc_now(),
            "tenant": tenant,
            "purpose": purpose,
            "data": data,
        }
    )
