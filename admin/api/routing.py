"""The route table: each route's method, path, models and handler in one place.

``build_app`` registers these routes and ``/openapi.json`` is generated from the same
table, so the document cannot drift from the server. A route's wrapper parses the query and
body through the route's models before the handler runs, and renders the handler's reply
through the route's response model.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from admin.api.errors import ApiError, Handler, from_validation
from admin.api.events_request import ACCESS_TOKEN_PARAM, EVENTS_PATH
from admin.api.state import STATE, AdminState


@dataclass(frozen=True)
class Input:
    """What a handler gets: the request, shared state, parsed query and body."""

    request: web.Request
    state: AdminState
    query: Any
    body: Any

    def path(self, name: str) -> str:
        """A path parameter."""
        return self.request.match_info[name]


@dataclass(frozen=True)
class Reply:
    """A handler's answer: a status and a model of the route's response type (or None)."""

    status: int
    model: BaseModel | None = None


RouteHandler = Callable[[Input], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    """One operation of the API."""

    method: str
    path: str
    handler: RouteHandler
    summary: str
    status: int
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: Error statuses the operation may answer besides 400/401/403.
    errors: tuple[int, ...] = ()
    auth: bool = True
    #: A body may be omitted (then it is ``{}``).
    body_optional: bool = False
    tag: str = "event-streams"

    @property
    def operation_id(self) -> str:
        """The handler's name, unique in the table."""
        return self.handler.__name__.lstrip("_")

    def bind(self) -> Handler:
        """The aiohttp handler: parse, call, render."""

        async def handle(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            query = _parse_query(request, self.query)
            body = await _parse_body(request, self.body, optional=self.body_optional)
            reply = await self.handler(Input(request, state, query, body))
            if reply.model is None:
                return web.Response(status=reply.status)
            assert self.response is not None
            assert isinstance(reply.model, self.response)
            return web.Response(
                status=reply.status,
                text=reply.model.model_dump_json(by_alias=True),
                content_type="application/json",
            )

        handle.__name__ = self.operation_id
        return handle


def _parse_query(request: web.Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    values: dict[str, str] = {}
    for key in request.query:
        given = request.query.getall(key)
        if len(given) > 1:
            raise ApiError(400, "invalid_request", "given more than once", key)
        values[key] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise from_validation(exc, what="query") from None
    except OverflowError:
        raise _out_of_range() from None


async def _parse_body(
    request: web.Request, model: type[BaseModel] | None, *, optional: bool
) -> Any:
    if model is None:
        return None
    raw = await request.read()
    if optional and not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation(exc) from None
    except OverflowError:
        raise _out_of_range() from None


def _out_of_range() -> ApiError:
    # producer.durations.parse_duration lets OverflowError escape pydantic for huge numbers,
    # so the field cannot be named here.
    return ApiError(400, "invalid_request", "a number is out of range")


#: Paths reachable without a token.
PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz"})
#: Paths that also take the token as ``?access_token=`` (a browser's EventSource cannot send
#: headers); the header wins when both are given.
QUERY_TOKEN_PATHS: Final = frozenset({EVENTS_PATH})


def auth_middleware(token: str) -> Middleware:
    """Every route but the health checks needs ``Authorization: Bearer <token>``: 401
    without credentials, 403 with a wrong token (compared in constant time)."""
    expected = token.encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header and request.path in QUERY_TOKEN_PATHS:
            header = "Bearer " + request.query.get(ACCESS_TOKEN_PARAM, "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
        if not hmac.compare_digest(given.strip().encode(errors="surrogateescape"), expected):
            raise ApiError(403, "forbidden", "the token is not valid")
        return await handler(request)

    return authenticate
