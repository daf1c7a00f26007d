"""Avro encoding of lifecycle events, the form they take on the Kafka topic.

Two wire formats, both self-describing:

* Single-object encoding (default, Avro specification): ``C3 01``, the 8-byte little-endian
  CRC-64-AVRO fingerprint of the writer schema, then the Avro binary body. Writer schemas are
  the packaged ones (:mod:`schemas.catalog`), so no registry is needed.
* Confluent wire format (when a schema registry is configured): ``00``, the 4-byte big-endian
  schema id, then the body. Schemas are registered under ``<topic>-<record full name>``
  (Confluent's TopicRecordNameStrategy), because one topic carries every event type.

:meth:`AvroCodec.decode` accepts both, whatever the codec writes, so a topic can switch format
without stranding old records. Records are always read with the latest packaged schema of their
type as the reader, so a record written with any older version decodes (new fields get their
defaults). Schemas are parsed once; writer/reader pairs are cached.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.catalog import SchemaCatalog, SchemaVersion, load_catalog, schema_fingerprint
from schemas.constants import (
    CONFLUENT_MAGIC,
    DEFAULT_TOPIC_PREFIX,
    LIFECYCLE_TOPIC,
    SINGLE_OBJECT_MAGIC,
)
from schemas.entities import AVRO_CONTEXT
from schemas.errors import (
    EventValidationError,
    FieldError,
    MalformedRecordError,
    UnknownSchemaError,
)
from schemas.models import LifecycleEvent, parse_event
from schemas.union_hints import Hint, union_hints

if TYPE_CHECKING:  # imported when a registry is used: the client pulls in ~25 MB of modules
    from confluent_kafka.schema_registry import SchemaRegistryClient

_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4


@dataclass(frozen=True, slots=True)
class _Reader:
    """How to read one writer schema: its event type, and the reader to resolve against."""

    event_type: str
    writer: Any
    #: ``None`` when the writer is the latest version (no resolution needed: faster).
    reader: Any | None


def _strip_nulls(value: Any) -> Any:
    # Avro cannot tell an absent optional field from a null one; the models treat both as
    # absent, so nulls are dropped (free-form maps are still JSON strings here, untouched).
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


class AvroCodec:
    """Encode events to Avro bytes and decode them back.

    ``registry`` is a ``SchemaRegistryClient`` or a registry URL (``mock://...`` gives
    confluent-kafka's in-memory mock); without it the codec writes single-object encoding.
    Registry calls are synchronous network calls made on first use of each schema; call
    :meth:`register_all` at start-up to make them up front.
    """

    def __init__(
        self,
        registry: SchemaRegistryClient | str | None = None,
        *,
        topic: str = DEFAULT_TOPIC_PREFIX + LIFECYCLE_TOPIC,
        catalog: SchemaCatalog | None = None,
    ) -> None:
        if isinstance(registry, str):
            from confluent_kafka.schema_registry import SchemaRegistryClient

            registry = SchemaRegistryClient.new_client({"url": registry})
        self._registry: SchemaRegistryClient | None = registry
        self._topic = topic
        self._catalog = catalog if catalog is not None else load_catalog()
        self._by_fingerprint: dict[bytes, _Reader] = {}
        self._by_schema_id: dict[int, _Reader] = {}
        self._schema_ids: dict[tuple[str, int], int] = {}
        self._hints: dict[bytes, Hint | None] = {}

    @property
    def catalog(self) -> SchemaCatalog:
        """The packaged schemas this codec reads and writes."""
        return self._catalog

    def subject(self, version: SchemaVersion) -> str:
        """The registry subject of a schema: ``<topic>-<record full name>``."""
        return f"{self._topic}-{version.record_name}"

    def register_all(self) -> dict[tuple[str, int], int]:
        """Register every packaged version (oldest first) and return their schema ids."""
        for version in self._catalog:
            self._schema_id(version)
        return dict(self._schema_ids)

    def encode(self, event: LifecycleEvent, *, version: int | None = None) -> bytes:
        """Encode ``event`` with the latest schema of its type, or the given older ``version``.

        Writing with an older version drops the fields it does not have.
        """
        schema = (
            self._catalog.latest(event.type)
            if version is None
            else self._catalog.get(event.type, version)
        )
        if self._registry is None:
            header = SINGLE_OBJECT_MAGIC + schema.fingerprint
        else:
            header = CONFLUENT_MAGIC + self._schema_id(schema).to_bytes(4, "big")
        out = io.BytesIO()
        out.write(header)
        record = event.model_dump(by_alias=True, context=AVRO_CONTEXT)
        try:
            hint = self._hints[schema.fingerprint]
        except KeyError:
            hint = self._hints[schema.fingerprint] = union_hints(schema.parsed)
        schemaless_writer(out, schema.parsed, record if hint is None else hint(record))
        return out.getvalue()

    def decode(self, payload: bytes) -> LifecycleEvent:
        """Decode bytes written by :meth:`encode` (either wire format) into an event.

        Raises :class:`MalformedRecordError` for bytes that are not a record,
        :class:`UnknownSchemaError` for a writer schema this build does not know, and
        :class:`EventValidationError` for a record that is not a valid event.
        """
        return parse_event(_strip_nulls(self.decode_record(payload)), context=AVRO_CONTEXT)

    def decode_record(self, payload: bytes) -> dict[str, Any]:
        """Decode bytes into the Avro record as fastavro reads it (read with the latest
        schema of its type, nulls and JSON-string maps kept), without validating it as an
        event beyond its ``type``: for readers that trust the Avro schema as the contract.

        Raises :class:`MalformedRecordError`, :class:`UnknownSchemaError`, or
        :class:`EventValidationError` when the record's ``type`` is not its schema's.
        """
        if payload[:2] == SINGLE_OBJECT_MAGIC:
            if len(payload) < _SINGLE_OBJECT_HEADER:
                raise MalformedRecordError("truncated single-object header")
            reader = self._reader_for_fingerprint(bytes(payload[2:_SINGLE_OBJECT_HEADER]))
            offset = _SINGLE_OBJECT_HEADER
        elif payload[:1] == CONFLUENT_MAGIC:
            if len(payload) < _CONFLUENT_HEADER:
                raise MalformedRecordError("truncated Confluent header")
            reader = self._reader_for_schema_id(int.from_bytes(payload[1:5], "big"))
            offset = _CONFLUENT_HEADER
        else:
            raise MalformedRecordError(f"unknown magic bytes {bytes(payload[:2]).hex()!r}")
        stream = io.BytesIO(payload)
        stream.seek(offset)
        try:
            record = schemaless_reader(stream, reader.writer, reader.reader)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
            raise MalformedRecordError(f"undecodable {reader.event_type} body: {exc!r}") from exc
        if stream.tell() != len(payload):
            raise MalformedRecordError(
                f"{len(payload) - stream.tell()} trailing bytes after the record"
            )
        if not isinstance(record, dict) or record.get("type") != reader.event_type:
            found = record.get("type") if isinstance(record, dict) else None
            raise EventValidationError(
                [FieldError("type", f"{found!r} in a {reader.event_type} schema")],
                context=f"invalid {reader.event_type}",
            )
        return record

    def _reader_for(self, writer: SchemaVersion) -> _Reader:
        latest = self._catalog.latest(writer.event_type)
        reader = None if latest.fingerprint == writer.fingerprint else latest.parsed
        return _Reader(writer.event_type, writer.parsed, reader)

    def _reader_for_fingerprint(self, fp: bytes) -> _Reader:
        cached = self._by_fingerprint.get(fp)
        if cached is None:
            version = self._catalog.by_fingerprint(fp)
            if version is None:
                raise UnknownSchemaError(f"no packaged schema has fingerprint {fp.hex()}")
            cached = self._by_fingerprint[fp] = self._reader_for(version)
        return cached

    def _reader_for_schema_id(self, schema_id: int) -> _Reader:
        cached = self._by_schema_id.get(schema_id)
        if cached is None:
            cached = self._by_schema_id[schema_id] = self._fetch_reader(schema_id)
        return cached

    def _fetch_reader(self, schema_id: int) -> _Reader:
        if self._registry is None:
            raise UnknownSchemaError(f"schema id {schema_id} but no schema registry configured")
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaError(f"schema id {schema_id} is not registered") from exc
            raise
        try:
            schema = json.loads(registered.schema_str or "")
            parsed = parse_schema(schema, named_schemas={})
        except Exception as exc:  # fastavro's SchemaParseException, JSON errors, ...
            raise UnknownSchemaError(f"schema id {schema_id} is not a usable Avro schema") from exc
        packaged = self._catalog.by_fingerprint(schema_fingerprint(parsed))
        if packaged is not None:
            return self._reader_for(packaged)
        # A version written by a newer or older build: resolve it by its record name.
        name = schema.get("name", "") if isinstance(schema, Mapping) else ""
        if "." not in name and isinstance(schema, Mapping) and schema.get("namespace"):
            name = f"{schema['namespace']}.{name}"
        event_type = self._catalog.event_type_of_record(name)
        if event_type is None:
            raise UnknownSchemaError(f"schema id {schema_id} ({name!r}) is no lifecycle event")
        return _Reader(event_type, parsed, self._catalog.latest(event_type).parsed)

    def _schema_id(self, version: SchemaVersion) -> int:
        key = (version.event_type, version.version)
        schema_id = self._schema_ids.get(key)
        if schema_id is None:
            assert self._registry is not None
            from confluent_kafka.schema_registry import Schema

            schema_id = self._registry.register_schema(
                self.subject(version), Schema(version.schema_json, "AVRO")
            )
            self._schema_ids[key] = schema_id
        return schema_id
