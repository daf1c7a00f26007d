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
    DeletedOrganization,
    DeletedUser,
    Geo,
    Group,
    GroupMembership,
    GroupRoleAssignment,
    GroupRoleRemoval,
    Identity,
    Organization,
    OrganizationConnection,
    OrganizationConnectionRef,
    OrganizationGroupRoleAssignment,
    OrganizationGroupRoleRemoval,
    OrganizationMember,
    OrganizationMemberRole,
    OrganizationRef,
    RoleRef,
    UpdatedGroup,
    User,
    UserRef,
)
from schemas.errors import EventValidationError
from schemas.ids import is_event_id, new_event_id
from schemas.timestamps import Timestamp, utc_now

__all__ = [
    "AVRO_CONTEXT",
    "EVENT_CLASSES",
    "EVENT_TIME_FIELDS",
    "AnyEntity",
    "Branding",
    "BrandingColors",
    "Context",
    "ContextClient",
    "ContextConnection",
    "ContextRequest",
    "ContextTenant",
    "DeletedOrganization",
    "DeletedUser",
    "EventData",
    "EventType",
    "Geo",
    "Group",
    "GroupCreatedEvent",
    "GroupDeletedEvent",
    "GroupMemberAddedEvent",
    "GroupMemberDeletedEvent",
    "GroupMembership",
    "GroupRoleAssignedEvent",
    "GroupRoleAssignment",
    "GroupRoleDeletedEvent",
    "GroupRoleRemoval",
    "GroupUpdatedEvent",
    "Identity",
    "LifecycleEvent",
    "Organization",
    "OrganizationConnection",
    "OrganizationConnectionAddedEvent",
    "OrganizationConnectionRef",
    "OrganizationConnectionRemovedEvent",
    "OrganizationConnectionUpdatedEvent",
    "OrganizationCreatedEvent",
    "OrganizationDeletedEvent",
    "OrganizationGroupRoleAssignedEvent",
    "OrganizationGroupRoleAssignment",
    "OrganizationGroupRoleDeletedEvent",
    "OrganizationGroupRoleRemoval",
    "OrganizationMember",
    "OrganizationMemberAddedEvent",
    "OrganizationMemberDeletedEvent",
    "OrganizationMemberRole",
    "OrganizationMemberRoleAssignedEvent",
    "OrganizationMemberRoleDeletedEvent",
    "OrganizationRef",
    "OrganizationUpdatedEvent",
    "RoleRef",
    "UpdatedGroup",
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
    "organization.connection.added",
    "organization.connection.updated",
    "organization.connection.removed",
    "organization.group.role.assigned",
    "organization.group.role.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.member.added",
    "group.member.deleted",
    "group.role.assigned",
    "group.role.deleted",
]

ObjectT = TypeVar("ObjectT", bound=BaseModel)
PreviousT = TypeVar("PreviousT", bound=BaseModel)

_STRICT: Final = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_event_id(value: str) -> str:
    if not is_event_id(value):
        raise ValueError("must be 'evt_' followed by 22 base62 characters")
    return value


EventId = Annotated[str, AfterValidator(_check_event_id)]


class EventData(BaseModel, Generic[ObjectT, PreviousT]):
    """``data`` of an event: the entity, optionally the entity as it was before the change
    (Auth0's ``previous_object``, defined for every event type), and optionally where the
    change came from."""

    model_config = _STRICT

    object: ObjectT
    previous_object: PreviousT | None = None
    context: Context | None = None


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
    data: EventData[Any, Any]
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
    data: EventData[User, User]


class UserUpdatedEvent(LifecycleEvent):
    """user.updated"""

    type: Literal["user.updated"] = "user.updated"
    data: EventData[User, User]


class UserDeletedEvent(LifecycleEvent):
    """user.deleted"""

    type: Literal["user.deleted"] = "user.deleted"
    data: EventData[DeletedUser, User]


class OrganizationCreatedEvent(LifecycleEvent):
    """organization.created"""

    type: Literal["organization.created"] = "organization.created"
    data: EventData[Organization, Organization]


class OrganizationUpdatedEvent(LifecycleEvent):
    """organization.updated"""

    type: Literal["organization.updated"] = "organization.updated"
    data: EventData[Organization, Organization]


class OrganizationDeletedEvent(LifecycleEvent):
    """organization.deleted"""

    type: Literal["organization.deleted"] = "organization.deleted"
    data: EventData[DeletedOrganization, DeletedOrganization]


class OrganizationMemberAddedEvent(LifecycleEvent):
    """organization.member.added"""

    type: Literal["organization.member.added"] = "organization.member.added"
    data: EventData[OrganizationMember, OrganizationMember]


class OrganizationMemberDeletedEvent(LifecycleEvent):
    """organization.member.deleted"""

    type: Literal["organization.member.deleted"] = "organization.member.deleted"
    data: EventData[OrganizationMember, OrganizationMember]


class OrganizationMemberRoleAssignedEvent(LifecycleEvent):
    """organization.member.role.assigned"""

    type: Literal["organization.member.role.assigned"] = "organization.member.role.assigned"
    data: EventData[OrganizationMemberRole, OrganizationMemberRole]


class OrganizationMemberRoleDeletedEvent(LifecycleEvent):
    """organization.member.role.deleted"""

    type: Literal["organization.member.role.deleted"] = "organization.member.role.deleted"
    data: EventData[OrganizationMemberRole, OrganizationMemberRole]


class OrganizationConnectionAddedEvent(LifecycleEvent):
    """organization.connection.added"""

    type: Literal["organization.connection.added"] = "organization.connection.added"
    data: EventData[OrganizationConnection, OrganizationConnection]


class OrganizationConnectionUpdatedEvent(LifecycleEvent):
    """organization.connection.updated"""

    type: Literal["organization.connection.updated"] = "organization.connection.updated"
    data: EventData[OrganizationConnection, OrganizationConnection]


class OrganizationConnectionRemovedEvent(LifecycleEvent):
    """organization.connection.removed"""

    type: Literal["organization.connection.removed"] = "organization.connection.removed"
    data: EventData[OrganizationConnectionRef, OrganizationConnectionRef]


class OrganizationGroupRoleAssignedEvent(LifecycleEvent):
    """organization.group.role.assigned"""

    type: Literal["organization.group.role.assigned"] = "organization.group.role.assigned"
    data: EventData[OrganizationGroupRoleAssignment, OrganizationGroupRoleAssignment]


class OrganizationGroupRoleDeletedEvent(LifecycleEvent):
    """organization.group.role.deleted"""

    type: Literal["organization.group.role.deleted"] = "organization.group.role.deleted"
    data: EventData[OrganizationGroupRoleRemoval, OrganizationGroupRoleAssignment]


class GroupCreatedEvent(LifecycleEvent):
    """group.created"""

    type: Literal["group.created"] = "group.created"
    data: EventData[Group, Group]


class GroupUpdatedEvent(LifecycleEvent):
    """group.updated"""

    type: Literal["group.updated"] = "group.updated"
    data: EventData[UpdatedGroup, UpdatedGroup]


class GroupDeletedEvent(LifecycleEvent):
    """group.deleted"""

    type: Literal["group.deleted"] = "group.deleted"
    data: EventData[UpdatedGroup, UpdatedGroup]


class GroupMemberAddedEvent(LifecycleEvent):
    """group.member.added"""

    type: Literal["group.member.added"] = "group.member.added"
    data: EventData[GroupMembership, GroupMembership]


class GroupMemberDeletedEvent(LifecycleEvent):
    """group.member.deleted"""

    type: Literal["group.member.deleted"] = "group.member.deleted"
    data: EventData[GroupMembership, GroupMembership]


class GroupRoleAssignedEvent(LifecycleEvent):
    """group.role.assigned"""

    type: Literal["group.role.assigned"] = "group.role.assigned"
    data: EventData[GroupRoleAssignment, GroupRoleAssignment]


class GroupRoleDeletedEvent(LifecycleEvent):
    """group.role.deleted"""

    type: Literal["group.role.deleted"] = "group.role.deleted"
    data: EventData[GroupRoleRemoval, GroupRoleAssignment]


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
    | OrganizationMemberRoleDeletedEvent
    | OrganizationConnectionAddedEvent
    | OrganizationConnectionUpdatedEvent
    | OrganizationConnectionRemovedEvent
    | OrganizationGroupRoleAssignedEvent
    | OrganizationGroupRoleDeletedEvent
    | GroupCreatedEvent
    | GroupUpdatedEvent
    | GroupDeletedEvent
    | GroupMemberAddedEvent
    | GroupMemberDeletedEvent
    | GroupRoleAssignedEvent
    | GroupRoleDeletedEvent,
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


#: The object field that records when the change happened, for the types that carry one;
#: :func:`make_event` fills it with the event time when the caller leaves it out.
EVENT_TIME_FIELDS: Final[Mapping[str, str]] = {
    "user.deleted": "deleted_at",
    "group.role.assigned": "created_at",
    "group.role.deleted": "deleted_at",
    "organization.group.role.assigned": "created_at",
    "organization.group.role.deleted": "deleted_at",
}


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
    source defaults to ``urn:tidings:<tenant>``. An object without its
    :data:`EVENT_TIME_FIELDS` field (``user.deleted``'s ``deleted_at``...) gets the event time.
    ``previous`` (``data.previous_object``, the entity before the change) is accepted by every
    type, as Auth0 defines it for every type; it is taken as given (no time is filled in).
    Raises :class:`EventValidationError` naming each bad field.
    """
    when = time if time is not None else utc_now()
    data: dict[str, Any] = {"object": _as_mapping(obj)}
    stamp = EVENT_TIME_FIELDS.get(event_type)
    if stamp is not None and isinstance(data["object"], Mapping):
        # A caller passing the user it just deleted (or the role it just assigned) has no
        # timestamp for it: the change is the event, so it happened at the event's time.
        data["object"] = {stamp: when, **data["object"]}
    if previous is not None:
        data["previous_object"] = _as_mapping(previous)
    if context is not None:
        data["context"] = _as_mapping(context)
    return parse_event(
        {
            "type": event_type,
            "source": source if source is not None else f"urn:tidings:{tenant}",
            "id": event_id if event_id is not None else new_event_id(),
            "time": when,
            "tenant": tenant,
            "purpose": purpose,
            "data": data,
        }
    )
