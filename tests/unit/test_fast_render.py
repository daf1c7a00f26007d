"""Tests for schemas.fast_render: CloudEvents JSON straight from the Avro record."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastavro import schemaless_writer

from schemas.catalog import load_catalog
from schemas.cloudevents import render_cloudevent_json
from schemas.codec import AvroCodec
from schemas.constants import EVENT_TYPES, SINGLE_OBJECT_MAGIC
from schemas.entities import AVRO_CONTEXT
from schemas.errors import ContractError, EventValidationError
from schemas.fast_render import JSON_MAP_FIELDS, render_record_json
from schemas.models import LifecycleEvent, make_event
from schemas.samples import sample_event, sample_previous_object

NESTED: dict[str, Any] = {
    "int": 1,
    "float": 1.0,
    "big": 2**62,
    "neg": -0.5,
    "null": None,
    "empty": {},
    "list": [1, "1", 1.5, None, [], [{"deep": {"deeper": [True, None]}}]],
    "unicode": "héllo ✓ 日本 🎉",
    "ключ": "значение",
    "digits": "1234567890123456789012345",
}


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    """A codec without a registry (single-object encoding)."""
    return AvroCodec()


def _fast(codec: AvroCodec, event: LifecycleEvent, purpose: str | None = None) -> Any:
    return json.loads(render_record_json(codec.decode_record(codec.encode(event)), purpose=purpose))


def _validated(codec: AvroCodec, event: LifecycleEvent, purpose: str | None = None) -> Any:
    return json.loads(render_cloudevent_json(codec.decode(codec.encode(event)), purpose=purpose))


def _raw(record: dict[str, Any], event_type: str = "user.created") -> bytes:
    schema = load_catalog().latest(event_type)
    body = io.BytesIO()
    schemaless_writer(body, schema.parsed, record)
    return SINGLE_OBJECT_MAGIC + schema.fingerprint + body.getvalue()


def test_the_free_form_map_fields_come_from_the_models() -> None:
    """Every field typed JsonMap, and only those, is read as a JSON-encoded object."""
    assert {"app_metadata", "user_metadata", "metadata", "profileData"} == JSON_MAP_FIELDS


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_equals_the_validated_rendering(codec: AvroCodec, event_type: str, seed: int) -> None:
    """For every type (with previous_object, which every type has, and context), the JSON is
    the validated path's."""
    event = sample_event(event_type, seed=seed)
    previous = sample_previous_object(event_type, seed=seed)
    obj = event.data.object
    event = make_event(event_type, obj, previous, event.data.context, tenant=event.tenant)
    assert event.data.previous_object is not None
    assert _fast(codec, event) == _validated(codec, event)


@pytest.mark.parametrize("purpose", [None, "test"])
def test_nested_unicode_maps_and_purposes_render_alike(
    codec: AvroCodec, purpose: str | None
) -> None:
    """Nulls inside free-form maps are kept, nesting and unicode survive, purpose overrides."""
    event = make_event(
        "user.updated",
        {"user_id": "auth0|1", "app_metadata": NESTED, "user_metadata": {}},
        {"user_id": "auth0|1", "email": None, "last_login": "2026-01-01T00:00:00.5+02:00"},
        {"client": {"id": "c", "metadata": NESTED}, "request": {"geo": {"latitude": 1.25}}},
        tenant="t",
        purpose="test",
    )
    fast = _fast(codec, event, purpose)
    assert fast == _validated(codec, event, purpose)
    assert fast["data"]["object"]["app_metadata"]["null"] is None
    assert fast["data"]["previous_object"]["last_login"] == "2025-12-31T22:00:00.500Z"
    assert fast["a0purpose"] == "test"


def test_an_older_writer_version_renders_alike(codec: AvroCodec) -> None:
    """A user.created written with v1 is read with the latest reader, new fields absent."""
    event = sample_event("user.created", seed=3)
    v1 = load_catalog().get("user.created", 1)
    record = event.model_dump(by_alias=True, context=AVRO_CONTEXT)
    record["data"]["object"].pop("last_password_reset", None)
    record["data"]["context"]["tenant"] = {"id": "tidings-demo"}  # v1's context tenant
    body = io.BytesIO()
    schemaless_writer(body, v1.parsed, record)
    payload = SINGLE_OBJECT_MAGIC + v1.fingerprint + body.getvalue()
    fast = json.loads(render_record_json(codec.decode_record(payload)))
    assert fast == json.loads(render_cloudevent_json(codec.decode(payload)))


@pytest.mark.parametrize(
    "metadata",
    ['["not", "an", "object"]', "{not json", '{"nan": NaN}', '{"big": 1e400}'],
)
def test_a_map_that_is_not_a_finite_json_object_is_refused(codec: AvroCodec, metadata: str) -> None:
    """A free-form map must hold a JSON object, as the validated path demands."""
    record = sample_event("user.created", seed=1).model_dump(by_alias=True, context=AVRO_CONTEXT)
    record["data"]["object"]["app_metadata"] = metadata
    payload = _raw(record)
    with pytest.raises(ContractError):
        codec.decode(payload)
    with pytest.raises(EventValidationError) as info:
        render_record_json(codec.decode_record(payload))
    assert info.value.paths == ("app_metadata",)


def test_an_integer_beyond_64_bits_is_refused_not_rounded(codec: AvroCodec) -> None:
    """orjson cannot write such an integer: the record is refused rather than altered."""
    record = sample_event("user.created", seed=1).model_dump(by_alias=True, context=AVRO_CONTEXT)
    record["data"]["object"]["app_metadata"] = json.dumps({"huge": 2**70})
    with pytest.raises(EventValidationError):
        render_record_json(codec.decode_record(_raw(record)))


def test_a_wrong_specversion_is_refused(codec: AvroCodec) -> None:
    """The envelope's constant is checked: it costs nothing and no valid event differs."""
    record = sample_event("user.created", seed=1).model_dump(by_alias=True, context=AVRO_CONTEXT)
    record["specversion"] = "2.0"
    with pytest.raises(EventValidationError) as info:
        render_record_json(codec.decode_record(_raw(record)))
    assert info.value.paths == ("specversion",)
