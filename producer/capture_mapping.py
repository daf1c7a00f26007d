"""The mapping file of change capture, and the pure step from a decoded row change to a
lifecycle event.

A YAML file says which table is captured, which column identifies the user, and which
columns become which Auth0 user fields::

    table: public.users          # schema-qualified or not (then public)
    subject: id                  # the column whose value is the user id
    subject_prefix: "auth0|"     # prepended to it (optional)
    fields:                      # user field: column
      email: email
      email_verified: email_verified
      name: full_name
      created_at: created_at
      app_metadata: metadata     # a json/jsonb column

Inserts become ``user.created``, updates ``user.updated`` (with ``data.previous_object`` when
the table has ``REPLICA IDENTITY FULL``, which makes PostgreSQL log the whole previous row),
deletes ``user.deleted`` (``deleted_at`` is the commit time; without FULL the deleted user
carries only its id). Column values are converted by their type (:func:`producer.pgoutput.convert`);
the events are validated like any other, so a column that cannot be its field (say an
integer ``email``) is reported, not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from producer.pgoutput import UNCHANGED, Change, Relation, Tuple, convert
from schemas.entities import User
from schemas.models import LifecycleEvent, make_event

_USER_FIELDS = frozenset(User.model_fields) - {"user_id"}


class MappingError(ValueError):
    """The mapping file is missing, not YAML, or names something that does not exist."""


class CaptureMapping(BaseModel):
    """What one mapping file says (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    subject_prefix: str = ""
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - _USER_FIELDS)
        if unknown:
            raise ValueError(
                f"not user fields: {', '.join(unknown)} (known: {', '.join(sorted(_USER_FIELDS))})"
            )
        return value

    @property
    def qualified_table(self) -> str:
        """``schema.table``."""
        return self.table if "." in self.table else f"public.{self.table}"


def load_mapping(path: str | Path, table: str | None = None) -> CaptureMapping:
    """Read a mapping file; ``table`` (``--table``) overrides the file's."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise MappingError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MappingError(f"{path}: expected a mapping with table, subject and fields")
    if table:
        raw["table"] = table
    try:
        return CaptureMapping.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise MappingError(f"{path}: {problems}") from exc


def user_of(
    mapping: CaptureMapping, relation: Relation, row: Tuple, before: Tuple | None = None
) -> dict[str, Any] | None:
    """The user a row describes (mapped fields only; NULL columns left out); None if the
    row lacks its subject. ``before`` supplies TOASTed values an update left unchanged."""
    values: dict[str, tuple[str | None, int]] = {}
    for index, (column, value) in enumerate(zip(relation.columns, row, strict=False)):
        if value == UNCHANGED:
            value = before[index] if before is not None and before[index] != UNCHANGED else None
        values[column.name] = (value, column.type_oid)
    subject, _oid = values.get(mapping.subject, (None, 0))
    if subject is None:
        return None
    user: dict[str, Any] = {"user_id": mapping.subject_prefix + subject}
    for field, column_name in mapping.fields.items():
        text, oid = values.get(column_name, (None, 0))
        if text is not None:
            user[field] = convert(text, oid)
    return user


def change_event(
    mapping: CaptureMapping,
    relation: Relation,
    change: Change,
    *,
    committed_at: datetime,
    event_id: str,
    tenant: str,
) -> LifecycleEvent | None:
    """The event of one row change (validated; raises ``EventValidationError`` when the
    mapped values are not a valid user); None when the row carries no subject."""
    full_before = change.old if change.old is not None and not change.old_is_key else None
    common: Mapping[str, Any] = {"tenant": tenant, "event_id": event_id, "time": committed_at}
    if change.kind == "insert" and change.new is not None:
        user = user_of(mapping, relation, change.new)
        return make_event("user.created", user, **common) if user else None
    if change.kind == "update" and change.new is not None:
        user = user_of(mapping, relation, change.new, change.old)
        previous = user_of(mapping, relation, full_before) if full_before else None
        return make_event("user.updated", user, previous, **common) if user else None
    if change.kind == "delete" and change.old is not None:
        user = user_of(mapping, relation, change.old)
        if user is None:
            return None
        return make_event("user.deleted", {**user, "deleted_at": committed_at}, **common)
    return None
