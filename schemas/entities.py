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
from typing import Annotated, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    WrapSerializer,
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


class Organization(Entity):
    """An Auth0 organization."""

    id: NonEmptyStr
    name: NonEmptyStr
    display_name: str | None = None
    branding: Branding | None = None
    metadata: JsonMap | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class OrganizationRef(Entity):
    """An organization named inside a membership event."""

    id: NonEmptyStr
    name: str | None = None


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


class OrganizationMemberRole(OrganizationMember):
    """A member's role: ``data.object`` of organization.member.role.assigned/deleted."""

    role: RoleRef


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
    country_code3: str | None = None
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
    geo: Geo | None = None


class ContextTenant(Entity):
    """The tenant the change happened in."""

    id: NonEmptyStr


class Context(Entity):
    """``data.context``: where the change came from. Every part is optional."""

    client: ContextClient | None = None
    connection: ContextConnection | None = None
    request: ContextRequest | None = None
    tenant: ContextTenant | None = None


#: Anything that can be ``data.object``.
AnyEntity = User | DeletedUser | Organization | OrganizationMember | OrganizationMemberRole
