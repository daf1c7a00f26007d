"""Tests for schemas.codec: Avro single-object and Confluent wire formats."""

from __future__ import annotations

import io
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import schemaless_writer

from schemas.catalog import load_catalog
from schemas.codec import AvroCodec
from schemas.constants import EVENT_TYPES
from schemas.entities import AVRO_CONTEXT
from schemas.errors import (
    ContractError,
    EventValidationError,
    MalformedRecordError,
    UnknownSchemaError,
)
from schemas.models import make_event
from schemas.samples import sample_event

NESTED: dict[str, Any] = {
    "int": 1,
    "float": 1.0,
    "big": 2**62,
    "neg": -0.5,
    "str_number": "1",
    "true": True,
    "false": False,
    "null": None,
    "empty": {},
    "list": [1, "1", 1.5, None, [], [{"deep": {"deeper": [True]}}]],
    "unicode": "héllo ✓ 日本 🎉",
    "ключ": "значение",
}


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    """A codec without a registry (single-object encoding)."""
    return AvroCodec()


@pytest.fixture
def registry_codec() -> AvroCodec:
    """A codec backed by confluent-kafka's in-memory mock registry."""
    return AvroCodec(SchemaRegistryClient.new_client({"url": "mock://tidings-test"}))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_round_trips(codec: AvroCodec, event_type: str) -> None:
    """An event with object, context (and previous_object) decodes equal to itself."""
    event = sample_event(event_type, seed=7)
    assert codec.decode(codec.encode(event)) == event


def _minimal_object(event_type: str) -> dict[str, Any]:
    if event_type.startswith("user."):
        obj: dict[str, Any] = {"user_id": "auth0|1"}
        if event_type == "user.deleted":
            obj["deleted_at"] = "2026-01-01T00:00:00.000Z"
        return obj
    if event_type.startswith("organization.member."):
        obj = {"organization": {"id": "org_1"}, "user": {"user_id": "auth0|1"}}
        if ".role." in event_type:
            obj["role"] = {"id": "rol_1"}
        return obj
    group = {"id": "grp_1", "type": "tenant"}
    when = "2026-01-01T00:00:00.000Z"
    if event_type.startswith("organization.connection."):
        return {"organization": {"id": "org_1"}, "connection": {"id": "con_1"}}
    if event_type.startswith(("group.role.", "organization.group.role.")):
        stamp = "created_at" if event_type.endswith(".assigned") else "deleted_at"
        obj = {"group": group, "role": {"id": "rol_1"}, stamp: when}
        if event_type.startswith("organization."):
            obj["organization"] = {"id": "org_1"}
        return obj
    if event_type.startswith("group.member."):
        return {"group": group, "member": {"member_type": "user", "id": "auth0|1"}}
    if event_type.startswith("group."):
        obj = {**group, "name": "g", "created_at": when}
        if event_type != "group.created":
            obj["updated_at"] = when
        return obj
    return {"id": "org_1", "name": "acme"}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_minimal_events_round_trip(codec: AvroCodec, event_type: str) -> None:
    """An event whose object has only its required fields decodes equal to itself."""
    event = make_event(event_type, _minimal_object(event_type), tenant="t", purpose="test")
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    assert decoded.purpose == "test"


@pytest.mark.parametrize("field", ["app_metadata", "user_metadata"])
def test_free_form_user_maps_survive_exactly(codec: AvroCodec, field: str) -> None:
    """Nested dicts, lists, ints versus floats, booleans, null and unicode come back as written."""
    event = make_event("user.created", {"user_id": "auth0|1", field: NESTED}, tenant="t")
    decoded = codec.decode(codec.encode(event)).data.object.model_dump()[field]
    assert decoded == NESTED
    assert type(decoded["int"]) is int
    assert type(decoded["float"]) is float
    assert decoded["str_number"] == "1"
    assert decoded["null"] is None
    assert list(decoded) == list(NESTED)


def test_organization_and_client_metadata_survive_exactly(codec: AvroCodec) -> None:
    """Organization metadata and context.client.metadata also round-trip exactly."""
    context = {"client": {"id": "cl_1", "metadata": NESTED}}
    event = make_event(
        "organization.created",
        {"id": "org_1", "name": "acme", "metadata": NESTED},
        context=context,
        tenant="t",
    )
    decoded = codec.decode(codec.encode(event))
    assert decoded.data.model_dump(mode="json")["object"]["metadata"] == NESTED
    assert decoded.data.context is not None
    assert decoded.data.context.model_dump()["client"]["metadata"] == NESTED


def test_header_is_magic_plus_fingerprint_of_the_latest_writer(codec: AvroCodec) -> None:
    """Single-object bytes start with C3 01 and the 8-byte CRC-64-AVRO of the writer schema."""
    event = sample_event("user.created", seed=1)
    payload = codec.encode(event)
    latest = load_catalog().latest("user.created")
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == latest.fingerprint
    assert latest.version == 4
    body = io.BytesIO()
    schemaless_writer(body, latest.parsed, event.model_dump(by_alias=True, context=AVRO_CONTEXT))
    assert payload[10:] == body.getvalue()


def test_v1_record_decodes_with_the_v2_reader(codec: AvroCodec) -> None:
    """A user.created written with v1 decodes, the v2 field taking its default (absent)."""
    event = make_event(
        "user.created",
        {
            "user_id": "auth0|1",
            "email": "ada@example.com",
            "app_metadata": NESTED,
            "last_password_reset": "2026-01-01T00:00:00Z",
        },
        tenant="t",
    )
    v1 = load_catalog().get("user.created", 1)
    payload = codec.encode(event, version=1)
    assert payload[2:10] == v1.fingerprint
    decoded = codec.decode(payload)
    assert isinstance(decoded.data.object, type(event.data.object))
    assert decoded.data.object.last_password_reset is None
    assert decoded.model_copy(update={"data": event.data}) == event
    assert decoded.data.object.app_metadata == NESTED


_CONNECTION_SETTINGS_ADDED = ("is_enabled", "organization_access_level")


#: The types whose latest version added data.previous_object (the other three had it).
_GAINED_PREVIOUS = [
    t for t in EVENT_TYPES if "previous_object" not in load_catalog().versions(t)[-2:][0].canonical
]


def test_every_type_but_the_updated_ones_gained_previous_object() -> None:
    """Only user/organization/group.updated had previous_object before."""
    assert set(EVENT_TYPES) - set(_GAINED_PREVIOUS) == {
        "user.updated",
        "organization.updated",
        "group.updated",
    }


@pytest.mark.parametrize("event_type", _GAINED_PREVIOUS)
def test_a_record_from_before_previous_object_decodes(codec: AvroCodec, event_type: str) -> None:
    """A record written with the version before the one that gave the type previous_object
    (and organization connections is_enabled/organization_access_level) still decodes, with
    the latest reader: the new fields are absent, the rest is unchanged."""
    older = load_catalog().versions(event_type)[-2]
    event = sample_event(event_type, seed=5)
    decoded = codec.decode(codec.encode(event, version=older.version))
    assert decoded.data.previous_object is None
    obj = event.data.object.model_dump(by_alias=True, exclude_none=True)
    if event_type in ("organization.connection.added", "organization.connection.updated"):
        assert set(_CONNECTION_SETTINGS_ADDED) <= set(obj)
        for name in _CONNECTION_SETTINGS_ADDED:
            del obj[name]
    assert decoded.data.object.model_dump(by_alias=True, exclude_none=True) == obj
    assert decoded.data.context == event.data.context
    assert decoded.model_copy(update={"data": event.data}) == event


def test_v1_record_written_by_an_older_build_decodes(codec: AvroCodec) -> None:
    """Bytes produced directly with the v1 schema (as an old producer would) decode."""
    v1 = load_catalog().get("user.created", 1)
    event = make_event("user.created", {"user_id": "auth0|9", "name": "Old"}, tenant="t")
    record = event.model_dump(by_alias=True, context=AVRO_CONTEXT)
    del record["data"]["object"]["last_password_reset"]
    body = io.BytesIO()
    schemaless_writer(body, v1.parsed, record)
    decoded = codec.decode(b"\xc3\x01" + v1.fingerprint + body.getvalue())
    assert decoded == event


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage bytes that are no record",
        b"\xc3",
        b"\xc3\x01\x00\x01",
        b"\x00\x00",
        b"\xff" * 40,
    ],
)
def test_garbage_raises_malformed(codec: AvroCodec, payload: bytes) -> None:
    """Empty, short, or wrongly-marked bytes raise MalformedRecordError."""
    with pytest.raises(MalformedRecordError):
        codec.decode(payload)


def test_truncated_body_raises_malformed(codec: AvroCodec) -> None:
    """Every truncation of a valid record raises MalformedRecordError, never EOFError."""
    payload = codec.encode(sample_event("user.updated", seed=2))
    for cut in range(10, len(payload)):
        with pytest.raises(MalformedRecordError):
            codec.decode(payload[:cut])


def test_trailing_bytes_raise_malformed(codec: AvroCodec) -> None:
    """Bytes after a complete record mean the record is not what it claims."""
    payload = codec.encode(sample_event("user.created", seed=2))
    with pytest.raises(MalformedRecordError, match="trailing"):
        codec.decode(payload + b"\x00")


def test_garbage_body_after_a_valid_header_raises_malformed(codec: AvroCodec) -> None:
    """A known fingerprint followed by random bytes raises MalformedRecordError."""
    header = b"\xc3\x01" + load_catalog().latest("organization.created").fingerprint
    for junk in (b"\xff" * 64, b"\x02\x80", bytes(range(256))):
        with pytest.raises(ContractError) as info:
            codec.decode(header + junk)
        assert isinstance(info.value, MalformedRecordError | EventValidationError)


def test_unknown_fingerprint_raises_unknown_schema(codec: AvroCodec) -> None:
    """A fingerprint no packaged schema has raises UnknownSchemaError."""
    payload = codec.encode(sample_event("user.created", seed=1))
    forged = payload[:2] + bytes(8) + payload[10:]
    with pytest.raises(UnknownSchemaError, match="0000000000000000"):
        codec.decode(forged)


def test_confluent_bytes_without_registry_raise_unknown_schema(codec: AvroCodec) -> None:
    """Confluent-framed bytes cannot be read by a codec with no registry."""
    with pytest.raises(UnknownSchemaError):
        codec.decode(b"\x00\x00\x00\x00\x01\x02")


def test_record_whose_type_contradicts_its_schema_is_invalid(codec: AvroCodec) -> None:
    """A user.created schema carrying type 'user.updated' fails validation on 'type'."""
    latest = load_catalog().latest("user.created")
    record = sample_event("user.created", seed=1).model_dump(by_alias=True, context=AVRO_CONTEXT)
    record["type"] = "user.updated"
    body = io.BytesIO()
    schemaless_writer(body, latest.parsed, record)
    with pytest.raises(EventValidationError) as info:
        codec.decode(b"\xc3\x01" + latest.fingerprint + body.getvalue())
    assert info.value.paths == ("type",)


def test_invalid_content_raises_event_validation_with_path(codec: AvroCodec) -> None:
    """A well-formed record with a bad event id fails with the path 'id'."""
    latest = load_catalog().latest("user.created")
    record = sample_event("user.created", seed=1).model_dump(by_alias=True, context=AVRO_CONTEXT)
    record["id"] = "not-an-id"
    record["data"]["object"]["app_metadata"] = "{not json"
    body = io.BytesIO()
    schemaless_writer(body, latest.parsed, record)
    with pytest.raises(EventValidationError) as info:
        codec.decode(b"\xc3\x01" + latest.fingerprint + body.getvalue())
    assert set(info.value.paths) == {"id", "data.object.app_metadata"}


@pytest.mark.parametrize(
    "event_type", ["user.created", "user.updated", "organization.member.role.assigned"]
)
def test_registry_mode_round_trips_with_confluent_framing(
    registry_codec: AvroCodec, event_type: str
) -> None:
    """With a registry, bytes are 00 + 4-byte schema id + body, and decode equal."""
    event = sample_event(event_type, seed=5)
    payload = registry_codec.encode(event)
    assert payload[:1] == b"\x00"
    schema_id = int.from_bytes(payload[1:5], "big")
    assert schema_id > 0
    assert registry_codec.decode(payload) == event


def test_registry_subjects_follow_topic_record_name_strategy(registry_codec: AvroCodec) -> None:
    """Schemas are registered under '<topic>-<record full name>', one id per version."""
    ids = registry_codec.register_all()
    assert len(set(ids.values())) == len(list(load_catalog()))
    version = load_catalog().latest("user.created")
    assert registry_codec.subject(version) == "tidings.lifecycle-dev.tidings.events.UserCreated"


def test_registry_decodes_v1_with_the_latest_reader(registry_codec: AvroCodec) -> None:
    """A registry-framed user.created v1 record decodes with the v2 reader."""
    event = make_event("user.created", {"user_id": "auth0|1", "name": "Ada"}, tenant="t")
    assert registry_codec.decode(registry_codec.encode(event, version=1)) == event


def test_registry_codec_still_reads_single_object_records(registry_codec: AvroCodec) -> None:
    """Records written before a registry was configured remain readable."""
    event = sample_event("organization.updated", seed=4)
    assert registry_codec.decode(AvroCodec().encode(event)) == event


def test_another_registry_reader_fetches_the_schema_by_id() -> None:
    """A decoder sharing the registry but not the writer's caches resolves the schema id."""
    client = SchemaRegistryClient.new_client({"url": "mock://tidings-shared"})
    event = sample_event("user.deleted", seed=8)
    payload = AvroCodec(client).encode(event)
    assert AvroCodec(client).decode(payload) == event


def test_unregistered_schema_id_raises_unknown_schema(registry_codec: AvroCodec) -> None:
    """A schema id the registry does not know raises UnknownSchemaError."""
    with pytest.raises(UnknownSchemaError):
        registry_codec.decode(b"\x00\x00\x00\x30\x39" + b"\x02")


def test_registry_url_string_builds_a_client() -> None:
    """A registry URL (mock:// here) may be given instead of a client."""
    event = sample_event("organization.deleted", seed=1)
    codec = AvroCodec("mock://tidings-url")
    payload = codec.encode(event)
    assert payload[:1] == b"\x00"
    assert codec.decode(payload) == event


def test_contract_errors_are_not_retryable() -> None:
    """Every decode error is a poison input: retrying cannot help."""
    for cls in (UnknownSchemaError, MalformedRecordError, EventValidationError):
        assert issubclass(cls, ContractError)
        assert cls.retryable is False


def test_two_codecs_decode_the_same_bytes_equally() -> None:
    """A fresh codec decodes another codec's bytes to the same events."""
    first, second = AvroCodec(), AvroCodec()
    events = [sample_event(t, seed=1) for t in EVENT_TYPES]
    assert [second.decode(first.encode(e)) for e in events] == events
