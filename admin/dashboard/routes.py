"""The dashboard's routes: three static files and a redirect, served without the token.

They are not part of the JSON API, so they are kept out of the route table that
``/openapi.json`` is generated from. Files are read once, when the routes are added; the
routes serve exactly these paths (no directory listing, no path taken from the request).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

STATIC: Final = Path(__file__).parent / "static"
PREFIX: Final = "/dashboard"

#: Served path -> (file in ``static/``, content type).
FILES: Final = {
    f"{PREFIX}/": ("index.html", "text/html"),
    f"{PREFIX}/app.js": ("app.js", "text/javascript"),
    f"{PREFIX}/style.css": ("style.css", "text/css"),
}
#: Every path the dashboard serves; none needs the token.
PATHS: Final = frozenset({"/", PREFIX, *FILES})

#: The page runs only its own script and style and talks only to its own origin, so an
#: injected string could neither run nor send the token elsewhere.
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _file_handler(body: bytes, content_type: str) -> Handler:
    async def serve_dashboard_file(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)

    return serve_dashboard_file


async def _to_index(_request: web.Request) -> web.StreamResponse:
    # index.html loads app.js relative to itself, so it must be served under the slash.
    raise web.HTTPPermanentRedirect(f"{PREFIX}/")


def add_routes(app: web.Application) -> None:
    """Register the dashboard's GET routes on ``app``."""
    for path, (name, content_type) in FILES.items():
        body = (STATIC / name).read_bytes()
        app.router.add_get(path, _file_handler(body, content_type), allow_head=False)
    app.router.add_get(PREFIX, _to_index, allow_head=False)
    app.router.add_get("/", _to_index, allow_head=False)  # the URL `make run` prints


def exempt(middleware: Middleware) -> Middleware:
    """``middleware`` (the token check) for every request but a GET of a dashboard file."""

    @web.middleware
    async def unless_dashboard(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if request.method == "GET" and resource is not None and resource.canonical in PATHS:
            return await handler(request)
        return await middleware(request, handler)

    return unless_dashboard
