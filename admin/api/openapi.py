"""The OpenAPI 3.1 document, generated from the route table and the models' JSON schemas,
so it lists exactly the routes the server registers."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from admin.api.models import ErrorOut
from admin.api.routing import Route

_REF: Final = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)}")
_REASONS: Final = {
    400: "Invalid input: `field` names the offending field (dotted path).",
    401: "No bearer token.",
    403: "Wrong bearer token.",
    404: "Unknown stream or event.",
    409: "Conflict with the current state.",
    503: "Kafka or the view is not ready.",
}


def _schemas(routes: Sequence[Route]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorOut, "serialization")]
    for route in routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
        if route.query is not None:
            wanted.append((route.query, "validation"))
    unique = list(dict.fromkeys(wanted))
    refs, definitions = models_json_schema(unique, ref_template=_REF)
    return dict(refs), dict(definitions.get("$defs", {}))


def _query_parameters(ref: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = schemas[ref["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        parameter = {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.get("description", ""),
            "schema": {k: v for k, v in prop.items() if k not in ("description", "title")},
        }
        if '"array"' in json.dumps(prop):
            # Lists in a query are one comma-separated value: statuses=failed,retrying
            parameter.update(style="form", explode=False)
        parameters.append(parameter)
    return parameters


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _REASONS.get(status, "Error."),
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorOut")}}},
    }


def build_document(routes: Sequence[Route], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document of ``routes``."""
    refs, schemas = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM.findall(route.path)
            ],
            "responses": {},
        }
        if route.query is not None:
            operation["parameters"] += _query_parameters(refs[(route.query, "validation")], schemas)
        if route.body is not None:
            operation["requestBody"] = {
                "required": not route.body_optional,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        success: dict[str, Any] = {"description": route.summary}
        if route.response is not None:
            success["content"] = {
                "application/json": {"schema": refs[(route.response, "serialization")]}
            }
        operation["responses"][str(route.status)] = success
        statuses = set(route.errors)
        if route.auth:
            statuses |= {401, 403, 503}
            operation["security"] = [{"bearer": []}]
        if route.body is not None or route.query is not None:
            statuses.add(400)
        for status in sorted(statuses):
            operation["responses"][str(status)] = _error(status)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
