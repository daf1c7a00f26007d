"""The admin API's errors: one exception type carrying the HTTP status and the stable
``{"code", "message", "field"}`` object clients see, and the middleware that renders it.

Internal failures are kept apart: anything that is not an :class:`ApiError` (or one of
aiohttp's own HTTP errors, such as 404 for an unknown path) is a bug, logged with its
traceback and answered ``500 {"code": "internal"}`` without details.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import structlog
from aiohttp import web
from pydantic import ValidationError

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Stable error codes, by HTTP status, for errors that carry no code of their own.
_CODE_OF_STATUS: Final = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the client caused or can act on; rendered as ``{"code","message","field"}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        #: Extra response headers (``Retry-After`` on 429).
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON object of the response."""
        return {"code": self.code, "message": self.message, "field": self.field}


def invalid(field: str | None, message: str) -> ApiError:
    """400: the input named by ``field`` is not acceptable."""
    return ApiError(400, "invalid_request", message, field)


def not_found(message: str) -> ApiError:
    """404: no such stream or event."""
    return ApiError(404, "not_found", message)


def conflict(code: str, message: str) -> ApiError:
    """409: the request is valid but the current state does not allow it."""
    return ApiError(409, code, message)


def unavailable(message: str) -> ApiError:
    """503: Kafka or the view is not ready; retrying later can succeed."""
    return ApiError(503, "unavailable", message)


def field_path(loc: Sequence[int | str], tags: Mapping[str, frozenset[str]]) -> str:
    """The dotted path of a pydantic error location, without the discriminator tags
    pydantic inserts after a tagged union (``destination.webhook.configuration`` becomes
    ``destination.configuration``). ``tags`` maps a field name to its union's tags."""
    parts: list[str] = []
    previous: str | None = None
    for part in loc:
        text = str(part)
        if previous is not None and text in tags.get(previous, frozenset()):
            previous = None
            continue
        parts.append(text)
        previous = text
    return ".".join(parts)


#: Discriminator tags of the stream model's tagged unions.
UNION_TAGS: Final = {
    "destination": frozenset({"webhook", "eventbridge"}),
    "webhook_authorization": frozenset({"bearer", "basic", "custom_header"}),
}


def _message(detail: Mapping[str, Any]) -> str:
    kind = detail["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    text = str(detail["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def from_validation(exc: ValidationError, *, prefix: str = "", what: str = "body") -> ApiError:
    """A 400 naming the first invalid field (dotted path) and why. Messages never echo the
    input, so a secret given in the wrong place is not reflected back."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ApiError(400, "invalid_json", f"the {what} is not valid JSON")
    path = field_path(first["loc"], UNION_TAGS)
    if not path and first["type"] == "model_type":
        return ApiError(400, "invalid_json", f"the {what} must be a JSON object")
    if path and prefix:
        path = f"{prefix}.{path}"
    message = _message(first)
    if first["type"] == "extra_forbidden" and what == "query":
        message = "unknown query parameter"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return invalid(path or prefix or None, message)


def error_response(error: ApiError) -> web.Response:
    """Render an :class:`ApiError`."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    headers.update(error.headers)
    return web.Response(
        status=error.status,
        text=json.dumps(error.body()),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the stable error object; only bugs become 500."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODE_OF_STATUS.get(exc.status, "http_error")
        return error_response(ApiError(exc.status, code, exc.reason))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("admin_api_internal_error", method=request.method, path=request.path)
        return error_response(ApiError(500, "internal", "internal error"))
