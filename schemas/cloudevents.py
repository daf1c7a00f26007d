"""Lifecycle events as Auth0 Event Streams delivers them: CloudEvents 1.0 structured JSON.

The rendering matches Auth0's field for field, so a receiver written for Auth0 works unchanged:
``specversion``, ``type``, ``source``, ``id``, ``time`` (RFC 3339, milliseconds, ``Z``),
``a0tenant``, ``a0stream`` (the stream delivering it), ``a0purpose`` (``"test"`` on test events
only) and ``data`` with ``object``, ``previous_object`` and ``context``.

Like Auth0, only attributes that are set are rendered: an absent (``None``) field of the
entity, and an absent ``previous_object`` or ``context``, has no key at all. Inside free-form
maps (``app_metadata`` ...) nothing is dropped: a ``null`` there is rendered as ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.errors import EventValidationError, FieldError
from schemas.models import LifecycleEvent, make_event, parse_event
from schemas.timestamps import format_rfc3339_millis

#: CloudEvents attributes renamed between the model and the delivered JSON.
_TO_WIRE = {"tenant": "a0tenant", "purpose": "a0purpose"}
_FROM_WIRE = {wire: field for field, wire in _TO_WIRE.items()}


def render_cloudevent(
    event: LifecycleEvent, *, stream_id: str | None = None, purpose: str | None = None
) -> dict[str, object]:
    """Render ``event`` as the CloudEvents object delivered for stream ``stream_id``.

    ``purpose`` overrides the event's own (``"test"`` for test events).
    """
    rendered: dict[str, object] = {
        "specversion": event.specversion,
        "type": event.type,
        "source": event.source,
        "id": event.id,
        "time": format_rfc3339_millis(event.time),
        "a0tenant": event.tenant,
    }
    if stream_id is not None:
        rendered["a0stream"] = stream_id
    effective_purpose = purpose if purpose is not None else event.purpose
    if effective_purpose is not None:
        rendered["a0purpose"] = effective_purpose
    rendered["data"] = event.data.model_dump(mode="json", by_alias=True, exclude_none=True)
    return rendered


def render_cloudevent_json(
    event: LifecycleEvent, *, stream_id: str | None = None, purpose: str | None = None
) -> bytes:
    """Render ``event`` as the UTF-8 JSON body of a delivery (compact, non-ASCII kept)."""
    return orjson.dumps(render_cloudevent(event, stream_id=stream_id, purpose=purpose))


def parse_cloudevent(obj: Mapping[str, Any]) -> LifecycleEvent:
    """Read a delivered CloudEvents object back into an event (the inverse of rendering).

    ``a0stream`` is dropped, since the stream is not part of the event. Unknown attributes are
    rejected. Raises :class:`EventValidationError` naming each bad field.
    """
    fields = {_FROM_WIRE.get(key, key): value for key, value in obj.items() if key != "a0stream"}
    for internal in _TO_WIRE:  # the model's own names are not valid on the wire
        if internal in obj:
            raise EventValidationError([FieldError(internal, "unknown CloudEvents attribute")])
    return parse_event(fields)


def event_from_object(
    event_type: str,
    obj: str | bytes | Mapping[str, Any] | BaseModel,
    *,
    tenant: str,
    previous: str | bytes | Mapping[str, Any] | None = None,
    context: str | bytes | Mapping[str, Any] | None = None,
    source: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    purpose: str | None = None,
) -> LifecycleEvent:
    """Build an event from a ``data.object`` given as JSON text or a mapping (CLI, test events).

    Raises :class:`EventValidationError` if the JSON does not parse or the object is invalid.
    """
    return make_event(
        event_type,
        _load("data.object", obj),
        None if previous is None else _load("data.previous_object", previous),
        None if context is None else _load("data.context", context),
        tenant=tenant,
        source=source,
        event_id=event_id,
        time=time,
        purpose=purpose,
    )


def _load(path: str, value: str | bytes | Mapping[str, Any] | BaseModel) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        loaded = json.loads(value)
    except ValueError as exc:
        raise EventValidationError([FieldError(path, f"invalid JSON: {exc}")]) from exc
    if not isinstance(loaded, dict):
        raise EventValidationError([FieldError(path, "must be a JSON object")])
    return loaded
