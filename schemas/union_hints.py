"""Name the branch of each optional record or array before fastavro writes it.

To write a union value fastavro must find the branch it belongs to, and for a record or an
array it does so by validating the whole value against each branch, then writes it (and
every union nested inside is validated again on the way down). Lifecycle events are unions
all the way down (``context`` → ``request`` → ``geo``), so that search was half of the
producer's encoding time. fastavro's tuple notation, ``(branch name, value)``, names the
branch instead; the value was already validated by its pydantic model.

Only unions of ``null`` and one record, array or map are hinted (the branch is then certain
for any non-null value of the right Python type); unions of primitives are cheap for fastavro
to match and are left alone, as is anything unexpected, which fastavro then checks as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Rewrites a value (in place where it is a dict) so that its unions name their branch.
Hint = Callable[[Any], Any]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def union_hints(parsed: Any) -> Hint | None:
    """The hinting function for one of fastavro's parsed schemas (``None``: nothing to hint).

    Apply it to the dict that is about to be written: ``schemaless_writer(out, parsed,
    hint(record))`` writes the same bytes as without it, faster.
    """
    return _compile(parsed, {}, frozenset())


def _compile(schema: Any, named: dict[str, Any], seen: frozenset[str]) -> Hint | None:
    if isinstance(schema, str):
        if schema in _PRIMITIVES or schema in seen or schema not in named:
            return None  # a recursive reference is left to fastavro
        return _compile(named[schema], named, seen)
    if isinstance(schema, list):
        return _union(schema, named, seen)
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind == "record":
        name = schema["name"]
        named[name] = schema
        inner = frozenset({*seen, name})
        fields = [(f["name"], _compile(f["type"], named, inner)) for f in schema["fields"]]
        return _record([(key, hint) for key, hint in fields if hint is not None])
    if kind == "array":
        item = _compile(schema["items"], named, seen)
        return None if item is None else _array(item)
    if kind == "map":
        value = _compile(schema["values"], named, seen)
        return None if value is None else _map(value)
    if isinstance(kind, (dict, list)):
        return _compile(kind, named, seen)
    return None


def _branch_name(branch: Any, named: dict[str, Any]) -> tuple[str, Any] | None:
    """How tuple notation names a complex branch, and the branch's own schema."""
    if isinstance(branch, str):
        target = named.get(branch)
        return None if target is None else (branch, target)
    if isinstance(branch, dict):
        kind = branch.get("type")
        if kind == "record":
            return branch["name"], branch
        if kind in ("array", "map"):
            return kind, branch
    return None


def _union(branches: list[Any], named: dict[str, Any], seen: frozenset[str]) -> Hint | None:
    others = [b for b in branches if b != "null"]
    if len(others) != 1 or len(branches) != len(others) + 1:
        return None
    found = _branch_name(others[0], named)
    if found is None:
        return None
    name, branch = found
    kind = branch.get("type")
    expected = dict if kind in ("record", "map") else list
    inner = _compile(others[0], named, seen)

    def hint(value: Any) -> Any:
        if type(value) is not expected:
            return value  # not this branch's shape: fastavro checks it (and refuses it)
        return (name, value if inner is None else inner(value))

    return hint


def _record(fields: list[tuple[str, Hint]]) -> Hint | None:
    if not fields:
        return None

    def hint(value: Any) -> Any:
        if type(value) is dict:
            for key, field_hint in fields:
                item = value.get(key)
                if item is not None:
                    value[key] = field_hint(item)
        return value

    return hint


def _array(item: Hint) -> Hint:
    def hint(value: Any) -> Any:
        return [item(v) for v in value] if type(value) is list else value

    return hint


def _map(item: Hint) -> Hint:
    def hint(value: Any) -> Any:
        return {k: item(v) for k, v in value.items()} if type(value) is dict else value

    return hint
