"""CloudEvents JSON straight from a decoded Avro record, without building the pydantic event.

The dispatcher renders every lifecycle record it delivers; validating it as a pydantic model
first is most of that cost, and buys nothing the writer has not already guaranteed: the
producer validates each event before encoding it, and the Avro schema (fingerprint, field
types, the ``type`` field) is the contract the dispatcher enforces. A record that does not
decode against a packaged schema, or whose ``type`` is not its schema's, is still refused
(:meth:`schemas.codec.AvroCodec.decode_record`), and so is a free-form map that is not a JSON
object.

The transformation is the one :func:`schemas.cloudevents.render_cloudevent_json` applies to a
validated event: nulls are dropped (inside free-form maps they are kept), timestamps become
RFC 3339 with milliseconds and ``Z``, free-form maps (JSON strings in Avro) become objects, and
``tenant``/``purpose`` are renamed ``a0tenant``/``a0purpose``. ``tests/unit/test_fast_render.py``
holds the two paths equal for every event type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final, get_args

import orjson
from pydantic import BaseModel

from schemas.entities import JsonMap
from schemas.errors import EventValidationError, FieldError
from schemas.models import EVENT_CLASSES
from schemas.timestamps import format_rfc3339_millis

#: The CloudEvents version every lifecycle event carries.
SPECVERSION: Final = "1.0"


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    """``model`` and every model reachable through its fields' annotations."""
    if model in seen:
        return
    seen.add(model)
    yield model
    for field in model.model_fields.values():
        pending: list[Any] = [field.annotation]
        while pending:
            annotation = pending.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from _models(annotation, seen)
            else:
                pending.extend(get_args(annotation))


def _json_map_fields() -> frozenset[str]:
    """Names of the fields typed :data:`~schemas.entities.JsonMap` in any event's models.

    A field name is all the record walk sees, so no other field may share such a name.
    """
    maps: set[str] = set()
    others: set[str] = set()
    seen: set[type[BaseModel]] = set()
    for event_class in EVENT_CLASSES.values():
        for model in _models(event_class, seen):
            for name, field in model.model_fields.items():
                key = field.alias or name
                is_map = field.annotation == JsonMap or JsonMap in get_args(field.annotation)
                (maps if is_map else others).add(key)
    shared = maps & others
    assert not shared, f"free-form map names also used by other fields: {sorted(shared)}"
    return frozenset(maps)


#: Fields whose Avro value is a JSON-encoded free-form object.
JSON_MAP_FIELDS: Final = _json_map_fields()

#: orjson reads integers beyond 64 bits as floats; a map with a long digit run is read exactly.
_LONG_DIGITS: Final = re.compile(r"[0-9]{20}")


def _json_map(name: str, text: object) -> object:
    if not isinstance(text, str):
        raise EventValidationError([FieldError(name, "not a JSON-encoded object")])
    try:
        value = json.loads(text) if _LONG_DIGITS.search(text) else orjson.loads(text)
    except ValueError as exc:
        raise EventValidationError([FieldError(name, f"not a JSON-encoded object: {exc}")]) from exc
    if not isinstance(value, dict):
        raise EventValidationError([FieldError(name, "not a JSON-encoded object")])
    return value


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    # fastavro gives exact dicts, lists, datetimes and scalars: dispatch on the exact type
    # (cheaper than isinstance chains; this runs for every field of every delivered event).
    out = {}
    for key, item in record.items():
        kind = type(item)
        if kind is str or kind is int or kind is bool or kind is float:
            out[key] = _json_map(key, item) if key in JSON_MAP_FIELDS else item
        elif item is None:
            continue
        elif kind is dict:
            out[key] = _clean(item)
        elif kind is datetime:
            out[key] = format_rfc3339_millis(item)
        else:
            out[key] = _value(item)
    return out


def _value(value: Any) -> Any:
    if type(value) is dict:
        return _clean(value)
    if type(value) is list:
        return [_value(item) for item in value]
    if isinstance(value, datetime):
        return format_rfc3339_millis(value)
    return value


def render_record_json(record: dict[str, Any], *, purpose: str | None = None) -> bytes:
    """The CloudEvents JSON body (without ``a0stream``) of a record read by
    :meth:`~schemas.codec.AvroCodec.decode_record`; ``purpose`` overrides the record's own.

    Raises :class:`EventValidationError` for a record no valid event could have produced.
    """
    if record.get("specversion") != SPECVERSION:
        raise EventValidationError(
            [FieldError("specversion", f"{record.get('specversion')!r} is not {SPECVERSION!r}")]
        )
    time = record.get("time")
    if not isinstance(time, datetime):
        raise EventValidationError([FieldError("time", "not a timestamp")])
    rendered: dict[str, Any] = {
        "specversion": SPECVERSION,
        "type": record["type"],
        "source": record["source"],
        "id": record["id"],
        "time": format_rfc3339_millis(time),
        "a0tenant": record["tenant"],
    }
    effective_purpose = purpose if purpose is not None else record.get("purpose")
    if effective_purpose is not None:
        rendered["a0purpose"] = effective_purpose
    rendered["data"] = _clean(record["data"])
    try:
        return orjson.dumps(rendered)
    except TypeError as exc:  # an integer beyond 64 bits, a lone surrogate
        raise EventValidationError([FieldError("data", f"not renderable as JSON: {exc}")]) from exc


def with_stream(body: bytes, stream_id: str) -> bytes:
    """A body of :func:`render_record_json` as stream ``stream_id`` delivers it (``a0stream``
    inserted first: JSON object keys are unordered)."""
    return b'{"a0stream":"' + stream_id.encode() + b'",' + body[1:]
