"""Auth0's published Event Catalog schema (``tests/contract/``) as a validator for tests.

``jsonschema`` checks the 2020-12 keywords Auth0 uses (``unevaluatedProperties``, ``oneOf``,
``const``) and, with its format checker, ``date-time``, ``uri`` and ``email`` values.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

CATALOG_FILE = Path(__file__).parent / "contract" / "auth0_event_catalog.schema.json"


@functools.cache
def catalog() -> dict[str, Any]:
    """The vendored catalog document."""
    loaded: dict[str, Any] = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def validator(event_type: str) -> Draft202012Validator:
    """A validator for one event type's delivered CloudEvent, formats enforced."""
    schema = {**catalog(), "$ref": f"#/events/{event_type}"}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(event: dict[str, Any]) -> list[str]:
    """Where ``event`` breaks Auth0's schema for its type (empty when it is valid)."""
    errors = validator(str(event["type"])).iter_errors(event)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors]
