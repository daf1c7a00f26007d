"""Tests for schemas.union_hints: naming union branches changes nothing fastavro writes."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas.catalog import load_catalog
from schemas.entities import AVRO_CONTEXT
from schemas.models import make_event
from schemas.samples import sample_event
from schemas.union_hints import union_hints

CATALOG = load_catalog()


def _write(parsed: Any, record: Any) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parsed, record)
    return out.getvalue()


_LATEST = [CATALOG.latest(t) for t in dict.fromkeys(v.event_type for v in CATALOG)]


@pytest.mark.parametrize("version", _LATEST, ids=lambda v: f"{v.event_type}.v{v.version}")
def test_hinted_records_encode_to_the_same_bytes(version: Any) -> None:
    """For every event type's writer schema and fifty samples each (full and minimal), the
    hinted record is written byte for byte as the plain one. (Older versions are only read.)"""
    hint = union_hints(version.parsed)
    assert hint is not None  # every event has an optional context
    for seed in range(50):
        event = sample_event(version.event_type, seed=seed)
        if seed % 5 == 0:
            event = make_event(version.event_type, event.data.object, tenant=event.tenant)
        plain = event.model_dump(by_alias=True, context=AVRO_CONTEXT)
        hinted = hint(event.model_dump(by_alias=True, context=AVRO_CONTEXT))
        assert _write(version.parsed, hinted) == _write(version.parsed, plain)


def test_optional_records_and_arrays_are_named_all_the_way_down() -> None:
    """context, context.request and context.request.geo become (full name, value) tuples;
    an optional array becomes ("array", items); primitives stay as they are."""
    version = CATALOG.latest("user.created")
    hint = union_hints(version.parsed)
    assert hint is not None
    record = hint(sample_event("user.created", seed=3).model_dump(context=AVRO_CONTEXT))
    name, context = record["data"]["context"]
    assert name == "dev.tidings.events.Context"
    request_name, request = context["request"]
    assert request_name == "dev.tidings.events.ContextRequest"
    assert request["geo"][0] == "dev.tidings.events.Geo"
    assert record["data"]["object"]["identities"][0] == "array"
    assert isinstance(record["data"]["object"]["email"], str)
    assert record["id"].startswith("evt_")


def test_a_value_of_the_wrong_shape_is_left_for_fastavro_to_refuse() -> None:
    """A string where the optional record belongs is not hinted, so fastavro still raises."""
    schema = parse_schema(
        {
            "type": "record",
            "name": "t.Outer",
            "fields": [
                {
                    "name": "inner",
                    "type": [
                        "null",
                        {
                            "type": "record",
                            "name": "t.Inner",
                            "fields": [{"name": "a", "type": "long"}],
                        },
                    ],
                }
            ],
        }
    )
    hint = union_hints(schema)
    assert hint is not None
    assert hint({"inner": "oops"}) == {"inner": "oops"}
    with pytest.raises(ValueError, match=r"'oops'.*do not match"):
        _write(schema, hint({"inner": "oops"}))
    assert hint({"inner": {"a": 1}}) == {"inner": ("t.Inner", {"a": 1})}
    assert hint({"inner": None}) == {"inner": None}


def test_named_references_and_maps_are_hinted_and_recursion_is_left_alone() -> None:
    """A second use of a named record (by name) and an optional map are hinted; a
    recursive type does not loop."""
    schema = parse_schema(
        {
            "type": "record",
            "name": "t.Node",
            "fields": [
                {
                    "name": "first",
                    "type": [
                        "null",
                        {
                            "type": "record",
                            "name": "t.Leaf",
                            "fields": [{"name": "v", "type": "string"}],
                        },
                    ],
                },
                {"name": "second", "type": ["null", "t.Leaf"]},
                {"name": "tags", "type": ["null", {"type": "map", "values": "string"}]},
                {"name": "next", "type": ["null", "t.Node"]},
                {"name": "either", "type": ["null", "string", "t.Leaf"]},
            ],
        }
    )
    hint = union_hints(schema)
    assert hint is not None
    value = {
        "first": {"v": "a"},
        "second": {"v": "b"},
        "tags": {"k": "v"},
        "next": None,
        "either": {"v": "c"},
    }
    plain = _write(schema, dict(value))
    hinted = hint(dict(value))
    assert hinted["first"] == ("t.Leaf", {"v": "a"})
    assert hinted["second"] == ("t.Leaf", {"v": "b"})
    assert hinted["tags"] == ("map", {"k": "v"})
    assert hinted["either"] == {"v": "c"}  # two non-null branches: fastavro chooses
    assert _write(schema, hinted) == plain
