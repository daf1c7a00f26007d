"""Realistic sample data for every event type, for tests, the producer demo and test events.

Everything is drawn from a :class:`random.Random` seeded by ``seed``, so a seed always gives the
same data (``None`` gives fresh data each call). Objects are plain JSON-shaped dicts, exactly
what a caller of the admin API's test endpoint or ``tidings emit`` would send.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from schemas.constants import EVENT_TYPES
from schemas.models import LifecycleEvent, make_event
from schemas.timestamps import format_rfc3339_millis

_GIVEN = ("Ada", "Grace", "Alan", "Édith", "Linus", "Margaret", "Ken", "Barbara", "Søren", "Yuki")
_FAMILY = ("Lovelace", "Hopper", "Turing", "Piaf", "Torvalds", "Hamilton", "Thompson", "Liskov")
_ORGS = ("acme", "globex", "initech", "umbrella", "hooli", "stark-industries", "wayne-enterprises")
_ROLES = ("admin", "billing", "member", "viewer", "support")
_GROUPS = ("Engineering", "Sales", "Support", "Finance", "Contractors")
_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_LATER = _EPOCH + timedelta(days=400)  # after every sampled created_at/updated_at


def _hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def _alnum(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def _when(rng: random.Random, *, after: datetime = _EPOCH, days: int = 300) -> datetime:
    return after + timedelta(milliseconds=rng.randrange(days * 86_400_000))


def _user(rng: random.Random) -> dict[str, Any]:
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    nickname = f"{given.lower()}.{family.lower()}"
    created = _when(rng)
    updated = _when(rng, after=created, days=30)
    local_id = _hex(rng, 24)
    return {
        "user_id": f"auth0|{local_id}",
        "email": f"{nickname}@example.com",
        "email_verified": rng.random() < 0.8,
        "name": f"{given} {family}",
        "nickname": nickname,
        "given_name": given,
        "family_name": family,
        "picture": f"https://s.gravatar.com/avatar/{_hex(rng, 32)}?s=480&r=pg",
        "created_at": format_rfc3339_millis(created),
        "updated_at": format_rfc3339_millis(updated),
        "identities": [
            {
                "connection": "Username-Password-Authentication",
                "user_id": local_id,
                "provider": "auth0",
                "isSocial": False,
                "profileData": {"email": f"{nickname}@example.com", "email_verified": True},
            }
        ],
        "app_metadata": {
            "plan": rng.choice(("free", "pro", "enterprise")),
            "seats": rng.randrange(1, 50),
            "discount": round(rng.random(), 2),
            "flags": {"beta": rng.random() < 0.5, "legacy_id": None},
            "roles": rng.sample(_ROLES, 2),
        },
        "user_metadata": {"locale": rng.choice(("en", "fr", "ja")), "theme": "dark"},
        "multifactor": [] if rng.random() < 0.7 else ["guardian"],
        "last_ip": f"203.0.113.{rng.randrange(1, 255)}",
        "last_login": format_rfc3339_millis(updated),
        "logins_count": rng.randrange(1, 500),
        "blocked": False,
    }


def _organization(rng: random.Random) -> dict[str, Any]:
    name = rng.choice(_ORGS)
    return {
        "id": f"org_{_alnum(rng, 16)}",
        "name": name,
        "display_name": name.replace("-", " ").title(),
        "branding": {
            "logo_url": f"https://cdn.example.com/{name}/logo.png",
            "colors": {"primary": f"#{_hex(rng, 6)}", "page_background": "#ffffff"},
        },
        "metadata": {"tier": rng.choice(("gold", "silver")), "region": "eu"},
    }


def _member(rng: random.Random, *, with_role: bool) -> dict[str, Any]:
    organization: dict[str, Any] = {"id": f"org_{_alnum(rng, 16)}"}
    if not with_role:  # Auth0 names the organization in membership events, not role events
        organization["name"] = rng.choice(_ORGS)
    member: dict[str, Any] = {
        "organization": organization,
        "user": {"user_id": f"auth0|{_hex(rng, 24)}"},
    }
    if with_role:
        member["role"] = _role(rng)
    return member


def _role(rng: random.Random, *, named: bool = True) -> dict[str, Any]:
    role: dict[str, Any] = {"id": f"rol_{_alnum(rng, 16)}"}
    if named:
        role["name"] = rng.choice(_ROLES)
    return role


def _base58(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_BASE58) for _ in range(length))


def _group_scope(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(("connection", "organization", "tenant"))
    scope: dict[str, Any] = {"type": kind}
    if kind == "connection":
        scope["connection_id"] = f"con_{_alnum(rng, 16)}"
    elif kind == "organization":
        scope["organization_id"] = f"org_{_alnum(rng, 16)}"
    return scope


def _group_ref(rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"grp_{_base58(rng, 16)}",
        "external_id": f"ext-{_hex(rng, 8)}",
        **_group_scope(rng),
    }


def _group(rng: random.Random, *, updated: bool) -> dict[str, Any]:
    created = _when(rng)
    group: dict[str, Any] = {
        "id": f"grp_{_base58(rng, 16)}",
        "name": rng.choice(_GROUPS),
        "external_id": f"ext-{_hex(rng, 8)}",
        "created_at": format_rfc3339_millis(created),
        **_group_scope(rng),
    }
    if updated:
        group["updated_at"] = format_rfc3339_millis(_when(rng, after=created, days=30))
    return group


def _group_member(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.7:
        return {"member_type": "user", "id": f"auth0|{_hex(rng, 24)}"}
    connection = f"con_{_alnum(rng, 16)}"
    return {
        "member_type": "connection",
        "id": connection,
        "type": "connection",
        "connection_id": connection,
    }


def _org_connection(rng: random.Random, *, settings: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "organization": {"id": f"org_{_alnum(rng, 16)}", "name": rng.choice(_ORGS)},
        "connection": {"id": f"con_{_alnum(rng, 16)}"},
    }
    if settings:
        obj["assign_membership_on_login"] = rng.random() < 0.5
        obj["show_as_button"] = rng.random() < 0.5
        obj["is_signup_enabled"] = rng.random() < 0.5
        obj["is_enabled"] = rng.random() < 0.9
        obj["organization_access_level"] = rng.choice(("none", "readonly", "limited", "full"))
    return obj


def _role_change(rng: random.Random, *, assigned: bool, in_organization: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {"group": _group_ref(rng), "role": _role(rng, named=assigned)}
    if in_organization:
        obj["organization"] = {"id": f"org_{_alnum(rng, 16)}"}
    obj["created_at" if assigned else "deleted_at"] = format_rfc3339_millis(_when(rng))
    return obj


def sample_object(event_type: str, *, seed: int | None = None) -> dict[str, Any]:
    """Return a realistic ``data.object`` for ``event_type`` (a JSON-shaped dict)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    rng = random.Random(seed)
    if event_type.startswith("user."):
        user = _user(rng)
        if event_type == "user.deleted":
            user["deleted_at"] = format_rfc3339_millis(_when(rng, after=_LATER, days=30))
        return user
    if event_type.startswith("organization.member."):
        return _member(rng, with_role=".role." in event_type)
    if event_type.startswith("organization.connection."):
        return _org_connection(rng, settings=not event_type.endswith(".removed"))
    if event_type.startswith(("group.role.", "organization.group.role.")):
        return _role_change(
            rng,
            assigned=event_type.endswith(".assigned"),
            in_organization=event_type.startswith("organization."),
        )
    if event_type.startswith("group.member."):
        return {"group": _group_ref(rng), "member": _group_member(rng)}
    if event_type.startswith("group."):
        return _group(rng, updated=event_type != "group.created")
    organization = _organization(rng)
    if event_type == "organization.deleted":
        del organization["branding"]  # Auth0 reports a deleted organization without it
    return organization


#: The ``data.previous_object`` of a deletion that is not shaped like its ``data.object``: the
#: entity as it was before (a user without ``deleted_at``, the role assignment being removed).
_PREVIOUS_SHAPE: Final[Mapping[str, str]] = {
    "user.deleted": "user.updated",
    "group.role.deleted": "group.role.assigned",
    "organization.group.role.deleted": "organization.group.role.assigned",
}


def sample_previous_object(event_type: str, *, seed: int | None = None) -> dict[str, Any]:
    """Return a realistic ``data.previous_object`` for ``event_type``: the same entity as
    :func:`sample_object` with the same seed gives, as it was before the change."""
    shape = _PREVIOUS_SHAPE.get(event_type, event_type)
    previous = sample_object(shape, seed=seed)
    if event_type.startswith("user."):
        previous["email_verified"] = not previous.get("email_verified", False)
    return previous


def sample_context(*, seed: int | None = None) -> dict[str, Any]:
    """Return a realistic ``data.context``: client, connection, request with geo, tenant."""
    rng = random.Random(seed)
    return {
        "client": {
            "id": _alnum(rng, 32),
            "name": "Tidings Demo App",
            "metadata": {"team": "identity", "version": 3},
        },
        "connection": {
            "id": f"con_{_alnum(rng, 16)}",
            "name": "Username-Password-Authentication",
            "strategy": "auth0",
        },
        "request": {
            "ip": f"198.51.100.{rng.randrange(1, 255)}",
            "method": "POST",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            "hostname": "login.example.com",
            "custom_domain": "login.example.com",
            "geo": {
                "country_code": "FR",
                "country_name": "France",
                "city_name": "Paris",
                "latitude": 48.8566,
                "longitude": 2.3522,
                "time_zone": "Europe/Paris",
                "continent_code": "EU",
            },
        },
        "tenant": {"tenant_id": f"ten_{_alnum(rng, 16)}"},
    }


def sample_event(
    event_type: str, *, tenant: str = "tidings-demo", seed: int | None = None
) -> LifecycleEvent:
    """Return a whole sample event: the object and a context.

    No ``previous_object``: Auth0 defines it as optional ("when applicable") and samples are
    what test events and the demo send; :func:`sample_previous_object` gives one for tests and
    callers that want it.
    """
    return make_event(
        event_type,
        sample_object(event_type, seed=seed),
        None,
        sample_context(seed=seed),
        tenant=tenant,
    )
