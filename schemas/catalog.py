"""The packaged Avro schemas: loading, composing and fingerprinting them, once per process.

Layout under ``schemas/avro/``:

* ``types/*.avsc``: shared named types (``User``, ``Organization``, ``Context``...), each a file.
* ``<event type>.v<N>.avsc``: one envelope schema per event type and version. It names shared
  types by full name (``dev.tidings.events.User``); loading inlines each named type at its first
  use, as the Avro specification requires, so every version resolves to one standalone schema.
  That full schema is what the registry receives and what the CRC-64-AVRO fingerprint of its
  parsing canonical form identifies.

A released version whose shared types have since changed is kept as a fully expanded, frozen
file (``user.created.v1.avsc``), so later edits to ``types/`` can never alter it.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from schemas.constants import EVENT_TYPES

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_EVENT_FILE = re.compile(r"^(?P<type>[a-z.]+)\.v(?P<version>[0-9]+)\.avsc$")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one event type's schema, fully resolved."""

    event_type: str
    version: int
    #: The standalone schema as JSON data, docs and defaults included.
    schema: Mapping[str, Any] = field(repr=False)
    #: fastavro's parsed form, ready for ``schemaless_reader``/``schemaless_writer``.
    parsed: Any = field(repr=False, compare=False)
    #: The Avro parsing canonical form (what the fingerprint covers).
    canonical: str = field(repr=False)
    #: CRC-64-AVRO fingerprint, 8 bytes little-endian, as in single-object encoding.
    fingerprint: bytes

    @property
    def record_name(self) -> str:
        """The envelope record's full name, e.g. ``dev.tidings.events.UserCreated``."""
        return f"{self.schema['namespace']}.{self.schema['name']}"

    @property
    def schema_json(self) -> str:
        """The schema as a JSON string, as given to a schema registry."""
        return json.dumps(self.schema, separators=(",", ":"))


def schema_fingerprint(parsed: Any) -> bytes:
    """Return the CRC-64-AVRO fingerprint (8 bytes, little-endian) of a parsed schema."""
    # fastavro's fingerprint() takes the canonical form string (not the parsed schema) and
    # returns the hex of the little-endian bytes, which is the single-object header order.
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class SchemaCatalog:
    """Every packaged schema version, indexed by event type, fingerprint and record name."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        if len(self._by_fingerprint) != len(versions):
            raise ValueError("two packaged schema versions share a fingerprint")
        self._by_type: dict[str, list[SchemaVersion]] = {}
        for version in sorted(versions, key=lambda v: (v.event_type, v.version)):
            self._by_type.setdefault(version.event_type, []).append(version)
        self._type_by_record = {v.record_name: v.event_type for v in versions}

    def __iter__(self) -> Iterator[SchemaVersion]:
        for event_type in EVENT_TYPES:
            yield from self._by_type.get(event_type, ())

    def latest(self, event_type: str) -> SchemaVersion:
        """The newest version of ``event_type`` (the default writer, and every reader)."""
        return self._by_type[event_type][-1]

    def get(self, event_type: str, version: int) -> SchemaVersion:
        """One given version; ``KeyError`` if it is not packaged."""
        for candidate in self._by_type.get(event_type, ()):
            if candidate.version == version:
                return candidate
        raise KeyError(f"no schema {event_type} v{version}")

    def versions(self, event_type: str) -> tuple[SchemaVersion, ...]:
        """All versions of ``event_type``, oldest first."""
        return tuple(self._by_type.get(event_type, ()))

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        """The version whose fingerprint is ``fp``, if any."""
        return self._by_fingerprint.get(fp)

    def event_type_of_record(self, record_name: str) -> str | None:
        """The event type whose envelope record is named ``record_name``, if any."""
        return self._type_by_record.get(record_name)


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _inline(node: Any, library: Mapping[str, Any], defined: set[str], namespace: str | None) -> Any:
    """Return ``node`` with each named type defined at its first use and referenced after."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = _fullname(node, namespace)
        if full in defined:
            return full
        if full not in library:
            raise ValueError(f"unknown Avro type {full!r}")
        return _inline(copy.deepcopy(library[full]), library, defined, namespace)
    if isinstance(node, list):
        return [_inline(branch, library, defined, namespace) for branch in node]
    kind = node["type"]
    if kind in _NAMED:
        full = _fullname(node["name"], node.get("namespace", namespace))
        if full in defined:
            raise ValueError(f"Avro type {full!r} defined twice")
        defined.add(full)
        inner_ns = full.rpartition(".")[0] or None
        if kind in ("record", "error"):
            fields = [
                {**f, "type": _inline(f["type"], library, defined, inner_ns)}
                for f in node["fields"]
            ]
            return {**node, "fields": fields}
        return dict(node)
    if kind == "array":
        return {**node, "items": _inline(node["items"], library, defined, namespace)}
    if kind == "map":
        return {**node, "values": _inline(node["values"], library, defined, namespace)}
    return {**node, "type": _inline(kind, library, defined, namespace)}


def resolve_schema(schema: Mapping[str, Any], library: Mapping[str, Any]) -> dict[str, Any]:
    """Inline the shared named types ``schema`` refers to, giving a standalone schema."""
    resolved: dict[str, Any] = _inline(dict(schema), library, set(), None)
    return resolved


def _load_json(path: resources.abc.Traversable) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def load_catalog() -> SchemaCatalog:
    """Load, compose and parse every packaged schema (cached: parsed once per process)."""
    root = resources.files("schemas") / "avro"
    library: dict[str, Any] = {}
    for path in (root / "types").iterdir():
        if path.name.endswith(".avsc"):
            definition = _load_json(path)
            library[_fullname(definition["name"], definition.get("namespace"))] = definition
    versions = []
    for path in root.iterdir():
        match = _EVENT_FILE.match(path.name)
        if match is None:
            continue
        event_type = match["type"]
        if event_type not in EVENT_TYPES:
            raise ValueError(f"{path.name}: unknown event type {event_type!r}")
        schema = resolve_schema(_load_json(path), library)
        parsed = parse_schema(schema, named_schemas={})
        versions.append(
            SchemaVersion(
                event_type=event_type,
                version=int(match["version"]),
                schema=schema,
                parsed=parsed,
                canonical=to_parsing_canonical_form(parsed),
                fingerprint=schema_fingerprint(parsed),
            )
        )
    missing = set(EVENT_TYPES) - {v.event_type for v in versions}
    if missing:
        raise ValueError(f"no packaged schema for {sorted(missing)}")
    return SchemaCatalog(versions)
