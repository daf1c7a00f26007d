"""Tests for schemas.catalog: packaged Avro schemas, composed and fingerprinted."""

from __future__ import annotations

import json

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas.catalog import load_catalog, resolve_schema, schema_fingerprint
from schemas.constants import EVENT_TYPES
from schemas.entities import DeletedUser, Organization, OrganizationMember, User
from schemas.models import EVENT_CLASSES

# Released schemas must never change: records already on the topic name them by fingerprint.
# Changing a schema means adding a version (a new file), not editing one.
RELEASED = {
    ("user.created", 1): "1e0f2bd360d42f7d",
    ("user.created", 2): "885d5018009c8db6",
    ("user.updated", 1): "345856d89a254adb",
    ("user.deleted", 1): "f1e7ab422c8f72a9",
    ("organization.created", 1): "e5357d4e241c2f56",
    ("organization.updated", 1): "fb31554fe42e7438",
    ("organization.deleted", 1): "595413aa0ca547eb",
    ("organization.member.added", 1): "1798698b391a5d87",
    ("organization.member.deleted", 1): "2ae3927f41eeb522",
    ("organization.member.role.assigned", 1): "cb077bdd818876d6",
    ("organization.member.role.deleted", 1): "e6395fd33af73e7e",
    # Catalog alignment (issue 18): context, identities, organizations, member roles.
    ("user.created", 3): "0652e688ad121701",
    ("user.updated", 2): "52514b337f3f56ba",
    ("user.deleted", 2): "d334f606817593ea",
    ("organization.created", 2): "c9939ed3e64c847c",
    ("organization.updated", 2): "917ce6c3a6791025",
    ("organization.deleted", 2): "37ece66721d679ba",
    ("organization.member.added", 2): "8215352e52201673",
    ("organization.member.deleted", 2): "d742bb4e993c2eaa",
    ("organization.member.role.assigned", 2): "38aabefcf84a2e7b",
    ("organization.member.role.deleted", 2): "c1039d38b2179446",
    ("organization.connection.added", 1): "b8e24a83d7990d6c",
    ("organization.connection.updated", 1): "de3a5b8de717d2c2",
    ("organization.connection.removed", 1): "b507a712ddfb8671",
    ("organization.group.role.assigned", 1): "00430be580a77278",
    ("organization.group.role.deleted", 1): "0bca3836fb9a0ff9",
    ("group.created", 1): "982f292c7d5b93cd",
    ("group.updated", 1): "5a768423e7b10274",
    ("group.deleted", 1): "3ba015d0ad29e011",
    ("group.member.added", 1): "be7eb16fad3c4835",
    ("group.member.deleted", 1): "60e8f1514718934f",
    ("group.role.assigned", 1): "ab3a253cea1f74b0",
    ("group.role.deleted", 1): "a00f826463b4391b",
    # Auth0's newer catalog (issue 18): data.previous_object on every type; organization
    # connections' is_enabled and organization_access_level.
    ("user.created", 4): "154ad1dd5ce45433",
    ("user.deleted", 3): "2c35aa26be96f79f",
    ("organization.created", 3): "43b373b1a12163a6",
    ("organization.deleted", 3): "728070b39d62c1ba",
    ("organization.member.added", 3): "a6c8300bb9d6655e",
    ("organization.member.deleted", 3): "051a2532f4b50e98",
    ("organization.member.role.assigned", 3): "c87f5527bd51a619",
    ("organization.member.role.deleted", 3): "a06588c4cc08e25d",
    ("organization.connection.added", 2): "4b104c86d226c561",
    ("organization.connection.updated", 2): "99cf831fd9655a0a",
    ("organization.connection.removed", 2): "6771c1ecd1b072a4",
    ("organization.group.role.assigned", 2): "25d02be0534f72f9",
    ("organization.group.role.deleted", 2): "442d3b1f0eb4391d",
    ("group.created", 2): "3f0973f0672d3b1c",
    ("group.deleted", 2): "ee4b2b42bff43d4e",
    ("group.member.added", 2): "d90c876b6ba438ce",
    ("group.member.deleted", 2): "591848ec5fdee2af",
    ("group.role.assigned", 2): "4370055e300227d8",
    ("group.role.deleted", 2): "11dd9dc88f3af8e4",
}


def _crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint exactly as the Avro specification defines it (reference)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_every_event_type_has_a_schema() -> None:
    """Each known event type resolves to at least one packaged schema version."""
    catalog = load_catalog()
    assert {v.event_type for v in catalog} == set(EVENT_TYPES)


def test_released_fingerprints_are_unchanged() -> None:
    """No released schema version has changed (its fingerprint is pinned)."""
    found = {(v.event_type, v.version): v.fingerprint.hex() for v in load_catalog()}
    assert found == RELEASED


def test_user_created_has_four_versions_each_adding_defaulted_fields() -> None:
    """user.created v2 adds last_password_reset, v3 profileData and the context's
    custom_domain, v4 (the latest) data.previous_object (all nullable, default null)."""
    catalog = load_catalog()
    v1, v2, v3, v4 = catalog.versions("user.created")
    assert (v1.version, v2.version, v3.version, v4.version) == (1, 2, 3, 4)
    assert catalog.latest("user.created") is v4
    assert "previous_object" not in v3.canonical
    data = next(f for f in v4.schema["fields"] if f["name"] == "data")["type"]
    previous = next(f for f in data["fields"] if f["name"] == "previous_object")
    assert previous["default"] is None
    assert previous["type"] == ["null", "dev.tidings.events.User"]
    assert "last_password_reset" not in v1.canonical
    assert "profileData" not in v2.canonical
    assert "profileData" in v3.canonical
    assert "custom_domain" in v3.canonical
    assert "country_code3" in v2.canonical
    assert "country_code3" not in v3.canonical
    user = v2.schema["fields"][-1]["type"]["fields"][0]["type"]
    added = next(f for f in user["fields"] if f["name"] == "last_password_reset")
    assert added["default"] is None


@pytest.mark.parametrize("version", list(load_catalog()), ids=str)
def test_fingerprint_is_spec_crc64_of_canonical_form(version: object) -> None:
    """The stored fingerprint is CRC-64-AVRO of the canonical form, little-endian."""
    from schemas.catalog import SchemaVersion

    assert isinstance(version, SchemaVersion)
    expected = _crc64_avro(version.canonical.encode()).to_bytes(8, "little")
    assert version.fingerprint == expected


def test_fingerprint_matches_the_spec_vector_for_null() -> None:
    """The fingerprint of the schema "null" is the specification's 0x63dd24e7cc258f8a."""
    assert schema_fingerprint(parse_schema("null")) == (0x63DD24E7CC258F8A).to_bytes(8, "little")


def test_schemas_are_standalone_with_each_named_type_defined_once() -> None:
    """The registry JSON parses on its own and re-parses to the same canonical form."""
    for version in load_catalog():
        reparsed = parse_schema(json.loads(version.schema_json), named_schemas={})
        assert to_parsing_canonical_form(reparsed) == version.canonical


def test_resolve_inlines_at_first_use_and_refers_after() -> None:
    """A type used twice is defined at the first use and referenced by name at the second."""
    library = {"ns.T": {"type": "record", "name": "T", "namespace": "ns", "fields": []}}
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "ns",
        "fields": [{"name": "a", "type": "ns.T"}, {"name": "b", "type": ["null", "ns.T"]}],
    }
    resolved = resolve_schema(schema, library)
    assert resolved["fields"][0]["type"]["name"] == "T"
    assert resolved["fields"][1]["type"] == ["null", "ns.T"]


def test_resolve_rejects_unknown_types() -> None:
    """A reference to a type no file defines is an error."""
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "ns.Nope"}]}
    with pytest.raises(ValueError, match=r"ns\.Nope"):
        resolve_schema(schema, {})


def _object_record_fields(event_type: str) -> set[str]:
    schema = load_catalog().latest(event_type).schema
    data = next(f for f in schema["fields"] if f["name"] == "data")["type"]
    obj = next(f for f in data["fields"] if f["name"] == "object")["type"]
    return {f["name"] for f in obj["fields"]}


@pytest.mark.parametrize(
    ("event_type", "model"),
    [
        ("user.created", User),
        ("user.deleted", DeletedUser),
        ("organization.created", Organization),
        ("organization.member.added", OrganizationMember),
    ],
)
def test_avro_object_fields_match_the_model(event_type: str, model: type[User]) -> None:
    """The Avro object record and the pydantic entity have the same field names."""
    model_fields = {f.alias or name for name, f in model.model_fields.items()}
    avro_fields = _object_record_fields(event_type)
    assert model_fields <= avro_fields
    assert avro_fields - model_fields <= {"deleted_at"}


def test_event_classes_cover_exactly_the_known_event_types() -> None:
    """There is one model class per event type, in the documented order."""
    assert tuple(EVENT_CLASSES) == EVENT_TYPES
