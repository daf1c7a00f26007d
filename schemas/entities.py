"""The entities a lifecycle event carries in ``data.object``: users, organizations, members.

Field names are Auth0's, so a receiver written for Auth0 reads them unchanged. Models are strict
about types (``"yes"`` is not a boolean, ``"5"`` is not a count) and forbid unknown fields, so
bad input fails loudly with the field's path instead of being dropped. ``None`` means the
attribute is absent: it is not rendered, and Avro stores it as null.

Free-form maps (``app_metadata``, ``user_metadata``, organization and client ``metadata``) are
any JSON object. In Avro they travel as a JSON-encoded string (see the ``.avsc`` docs); the
conversion happens here, when a model is dumped or validated with :data:`AVRO_CONTEXT`.
"""

from __future__ import annotations

import json
from typing import Annotated, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    WrapSerializer,
    model_validator,
)
from pydantic.functional_validators import AfterValidator, BeforeValidator

from schemas.timestamps import Timestamp

#: Pass as ``context=`` to ``model_dump``/``model_validate`` for the Avro representation.
AVRO_CONTEXT: Final = {"tidings_avro": True}


def _is_avro(context: object) -> bool:
    return isinstance(context, dict) and context.get("tidings_avro") is True


def _json_map_from_avro(value: object, info: ValidationInfo) -> object:
    if _is_avro(info.context) and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not a JSON-encoded object: {exc}") from exc
    return value


def _json_map_to_avro(
    value: dict[str, JsonValue], handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> object:
    if _is_avro(info.context):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return handler(value)


def _finite_json(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    # NaN and infinity are not JSON: refuse them here rather than fail at delivery.
    json.dumps(value, allow_nan=False)
    return value


#: A free-form JSON object, kept exactly (nesting, ints versus floats, booleans, null).
JsonMap = Annotated[
    dict[str, JsonValue],
    BeforeValidator(_json_map_from_avro),
    AfterValidator(_finite_json),
    WrapSerializer(_json_map_to_avro),
]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class Entity(BaseModel):
    """Base of every entity: frozen, strict, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class Identity(Entity):
    """One identity linked to a user."""

    connection: NonEmptyStr
    user_id: NonEmptyStr
    provider: NonEmptyStr
    is_social: bool = Field(alias="isSocial")
    #: The provider's profile of the user (Auth0's ``profileData``: email, name, ...).
    profile_data: JsonMap | None = Field(default=None, alias="profileData")


class User(Entity):
    """An Auth0 user profile; only ``user_id`` is required."""

    user_id: NonEmptyStr
    email: str | None = None
    email_verified: bool | None = None
    username: str | None = None
    phone_number: str | None = None
    phone_verified: bool | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    identities: list[Identity] | None = None
    app_metadata: JsonMap | None = None
    user_metadata: JsonMap | None = None
    picture: str | None = None
    name: str | None = None
    nickname: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    multifactor: list[str] | None = None
    last_ip: str | None = None
    last_login: Timestamp | None = None
    logins_count: Annotated[int, Field(ge=0)] | None = None
    blocked: bool | None = None
    last_password_reset: Timestamp | None = None


class DeletedUser(User):
    """The user as ``user.deleted`` reports it: the profile plus when it was deleted."""

    deleted_at: Timestamp


class BrandingColors(Entity):
    """An organization's login page colours."""

    primary: NonEmptyStr
    page_background: NonEmptyStr


class Branding(Entity):
    """An organization's branding."""

    logo_url: str | None = None
    colors: BrandingColors | None = None


class DeletedOrganization(Entity):
    """The organization as organization.deleted reports it (Auth0's catalog: no branding)."""

    id: NonEmptyStr
    name: NonEmptyStr
    display_name: str | None = None
    metadata: JsonMap | None = None


class Organization(Entity):
    """An Auth0 organization (Auth0's catalog gives it no created_at/updated_at)."""

    id: NonEmptyStr
    name: NonEmptyStr
    display_name: str | None = None
    branding: Branding | None = None
    metadata: JsonMap | None = None


class OrganizationRef(Entity):
    """An organization named inside a membership event."""

    id: NonEmptyStr
    name: str | None = None


class OrganizationIdRef(Entity):
    """An organization referenced by id only (role events: Auth0 forbids the name there)."""

    id: NonEmptyStr


class UserRef(Entity):
    """A user named inside a membership event."""

    user_id: NonEmptyStr


class RoleRef(Entity):
    """A role named inside a role-assignment event."""

    id: NonEmptyStr
    name: str | None = None


class OrganizationMember(Entity):
    """A membership: ``data.object`` of organization.member.added/deleted."""

    organization: OrganizationRef
    user: UserRef


class OrganizationMemberRole(Entity):
    """A member's role: ``data.object`` of organization.member.role.assigned/deleted."""

    organization: OrganizationIdRef
    user: UserRef
    role: RoleRef


class ConnectionRef(Entity):
    """A connection referenced by id (``con_...``)."""

    id: NonEmptyStr


#: How much of an organization a connection may reach (Auth0's ``organization_access_level``).
OrganizationAccessLevel = Literal["none", "readonly", "limited", "full"]


class OrganizationConnection(Entity):
    """``data.object`` of organization.connection.*: a connection enabled for an organization.

    The settings are absent on organization.connection.removed (Auth0 sends references only
    there; :class:`OrganizationConnectionRef` enforces it).
    """

    organization: OrganizationRef
    connection: ConnectionRef
    assign_membership_on_login: bool | None = None
    show_as_button: bool | None = None
    is_signup_enabled: bool | None = None
    is_enabled: bool | None = None
    organization_access_level: OrganizationAccessLevel | None = None


class OrganizationConnectionRef(Entity):
    """``data.object`` of organization.connection.removed: the two references only."""

    organization: OrganizationRef
    connection: ConnectionRef


GroupKind = Literal["connection", "organization", "tenant"]


class _GroupScope(Entity):
    """What a group belongs to: ``type`` and, for connection and organization groups, the id."""

    type: GroupKind
    connection_id: str | None = None
    organization_id: str | None = None

    @model_validator(mode="after")
    def _scope_id_matches_type(self) -> Self:
        # Auth0 models the three kinds as one-of objects: exactly the matching id is allowed.
        wanted = {"connection": "connection_id", "organization": "organization_id"}.get(self.type)
        for field in ("connection_id", "organization_id"):
            present = getattr(self, field) is not None
            if field == wanted and not present:
                raise ValueError(f"{field} is required for a {self.type} group")
            if field != wanted and present:
                raise ValueError(f"{field} is not allowed for a {self.type} group")
        return self


class Group(_GroupScope):
    """A group: ``data.object`` of group.created (without ``updated_at``)."""

    id: NonEmptyStr
    name: NonEmptyStr
    external_id: str | None = None
    created_at: Timestamp


class UpdatedGroup(Group):
    """A group as group.updated and group.deleted report it: with ``updated_at``."""

    updated_at: Timestamp


class GroupRef(_GroupScope):
    """A group referenced inside membership and role events."""

    id: NonEmptyStr
    external_id: str | None = None


class GroupMember(Entity):
    """A member of a group: a user (``member_type`` user) or a connection."""

    member_type: Literal["user", "connection"]
    id: NonEmptyStr
    type: str | None = None
    connection_id: str | None = None

    @model_validator(mode="after")
    def _connection_fields(self) -> Self:
        is_connection = self.member_type == "connection"
        if is_connection and (self.type is None or self.connection_id is None):
            raise ValueError("a connection member needs type and connection_id")
        if not is_connection and (self.type is not None or self.connection_id is not None):
            raise ValueError("a user member has only member_type and id")
        return self


class GroupMembership(Entity):
    """``data.object`` of group.member.added/deleted."""

    group: GroupRef
    member: GroupMember


class RoleIdRef(Entity):
    """A role referenced by id only (role removal events)."""

    id: NonEmptyStr


class GroupRoleAssignment(Entity):
    """``data.object`` of group.role.assigned."""

    group: GroupRef
    role: RoleRef
    created_at: Timestamp


class GroupRoleRemoval(Entity):
    """``data.object`` of group.role.deleted."""

    group: GroupRef
    role: RoleIdRef
    deleted_at: Timestamp


class OrganizationGroupRoleAssignment(GroupRoleAssignment):
    """``data.object`` of organization.group.role.assigned."""

    organization: OrganizationIdRef


class OrganizationGroupRoleRemoval(GroupRoleRemoval):
    """``data.object`` of organization.group.role.deleted."""

    organization: OrganizationIdRef


class ContextClient(Entity):
    """The application that made the change."""

    id: NonEmptyStr
    name: str | None = None
    metadata: JsonMap | None = None


class ContextConnection(Entity):
    """The connection involved."""

    id: NonEmptyStr
    name: str | None = None
    strategy: str | None = None


class Geo(Entity):
    """Where the request came from, as geolocated from its IP address."""

    country_code: str | None = None
    country_name: str | None = None
    subdivision_code: str | None = None
    subdivision_name: str | None = None
    city_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    time_zone: str | None = None
    continent_code: str | None = None


class ContextRequest(Entity):
    """The HTTP request that caused the change."""

    ip: str | None = None
    method: str | None = None
    user_agent: str | None = None
    hostname: str | None = None
    custom_domain: str | None = None
    geo: Geo | None = None


class ContextTenant(Entity):
    """The tenant the change happened in: Auth0's ``tenant_id`` (``ten_...``), or Tidings'
    earlier ``id`` (still read, so records and callers from before keep working)."""

    id: NonEmptyStr | None = None
    tenant_id: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if self.id is None and self.tenant_id is None:
            raise ValueError("tenant_id is required")
        return self


class Context(Entity):
    """``data.context``: where the change came from. Every part is optional."""

    client: ContextClient | None = None
    connection: ContextConnection | None = None
    request: ContextRequest | None = None
    tenant: ContextTenant | None = None


#: Anything that can be ``data.object``.
AnyEntity = (
    User
    | DeletedUser
    | Organization
    | DeletedOrganization
    | OrganizationMember
    | OrganizationMemberRole
    | OrganizationConnection
    | OrganizationConnectionRef
    | Group
    | UpdatedGroup
    | GroupMembership
    | GroupRoleAssignment
    | GroupRoleRemoval
    | OrganizationGroupRoleAssignment
    | OrganizationGroupRoleRemoval
)
