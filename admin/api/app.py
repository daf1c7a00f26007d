"""The admin server: :func:`build_app` wires the route table, middlewares and lifecycle;
:func:`serve` runs it until SIGTERM/SIGINT. Health checks live here too."""

from __future__ import annotations

import asyncio
import secrets
import signal
from importlib.metadata import PackageNotFoundError, version
from typing import Final

import structlog
from aiohttp import web

from admin.api import delivery_routes, events_routes, stream_routes
from admin.api import metrics as api_metrics
from admin.api.errors import error_middleware
from admin.api.models import Health, OpenApiDocument
from admin.api.openapi import build_document
from admin.api.routing import Input, Reply, Route, auth_middleware
from admin.api.state import MAX_STREAMS, STATE, AdminState
from admin.dashboard import add_routes as add_dashboard_routes
from admin.dashboard import exempt as exempt_dashboard
from producer.config import Settings

log = structlog.get_logger(__name__)

#: Largest request body accepted (a stream with five secrets is a few KB).
MAX_BODY_BYTES: Final = 256 * 1024


async def healthz(_call: Input) -> Reply:
    """Liveness: the process answers."""
    return Reply(200, Health(status="ok"))


async def readyz(call: Input) -> Reply:
    """Readiness: Kafka answers, and the view and the history store have read up to the
    offsets seen at start."""
    view, ingest = call.state.view, call.state.ingest
    caught_up = view.caught_up.is_set() and ingest is not None and ingest.caught_up.is_set()
    kafka = await view.kafka_reachable()
    if kafka and caught_up:
        return Reply(200, Health(status="ok", kafka=True, caught_up=True))
    status = "starting" if kafka else "unavailable"
    return Reply(503, Health(status=status, kafka=kafka, caught_up=caught_up))


async def openapi(call: Input) -> Reply:
    """This document."""
    return Reply(200, call.request.app[DOCUMENT])


DOCUMENT: Final = web.AppKey("tidings_admin_openapi", OpenApiDocument)

OPS_ROUTES: Final = (
    Route("GET", "/healthz", healthz, "Liveness", 200, Health, auth=False, tag="health"),
    Route(
        "GET", "/readyz", readyz, "Readiness", 200, Health, errors=(503,), auth=False, tag="health"
    ),
    Route(
        "GET", "/openapi.json", openapi, "This OpenAPI document", 200, OpenApiDocument, tag="meta"
    ),
)

#: Every route of the API.
ROUTES: Final = (*OPS_ROUTES, *stream_routes.ROUTES, *delivery_routes.ROUTES)


def _version() -> str:
    try:
        return version("tidings")
    except PackageNotFoundError:
        return "0"


def build_app(settings: Settings, token: str, *, max_streams: int = MAX_STREAMS) -> web.Application:
    """The admin API application; its Kafka clients start and stop with the app."""
    if not token:
        raise ValueError("the admin API needs a token")
    # The dashboard's static files carry no secret and no data: they are served without the
    # token, and are not JSON API routes (so not in ROUTES nor in /openapi.json).
    app = web.Application(
        middlewares=[error_middleware, exempt_dashboard(auth_middleware(token))],
        client_max_size=MAX_BODY_BYTES,
    )
    state = AdminState(settings, token, max_streams)
    app[STATE] = state
    document = build_document(ROUTES, title="Tidings admin API", version=_version())
    document["paths"][api_metrics.PATH] = api_metrics.OPENAPI_PATH_ITEM
    document["paths"][events_routes.EVENTS_PATH] = events_routes.OPENAPI_PATH_ITEM
    app[DOCUMENT] = OpenApiDocument.model_validate(document)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.bind())
    app.router.add_get(api_metrics.PATH, api_metrics.metrics, allow_head=False)
    events_routes.install(app, settings)
    add_dashboard_routes(app)
    app.cleanup_ctx.append(state.lifespan)
    return app


async def serve(settings: Settings, host: str, port: int, token: str | None) -> None:
    """Serve until SIGTERM or SIGINT. Without a token, one is generated and printed."""
    if token is None:
        token = secrets.token_urlsafe(32)
        print(f"admin API token (pass as Authorization: Bearer ...): {token}", flush=True)
    runner = web.AppRunner(build_app(settings, token), shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("admin_api_listening", host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("admin_api_stopped")
