"""``tidings admin serve``: run the admin API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, Final

from producer.config import Settings

#: The environment variable holding the API's bearer token.
TOKEN_ENV: Final = "TIDINGS_ADMIN_TOKEN"
#: Tokens shorter than this are refused: a bearer token is the whole of the API's security.
MIN_TOKEN_LENGTH: Final = 16


def cmd_admin_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the admin API until SIGTERM/SIGINT; the token comes from TIDINGS_ADMIN_TOKEN
    (one is generated and printed when it is unset)."""
    from admin.api.app import serve
    from producer.logs import configure_logging

    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        print(f"error: {TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters", file=sys.stderr)
        return 1
    configure_logging(args.log_level or settings.log_level)
    asyncio.run(serve(settings, args.host, args.port, token))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``admin serve [--host] [--port] [--log-level]`` to the ``tidings`` parser."""
    admin = subparsers.add_parser("admin", help="the admin HTTP API")
    admin_sub = admin.add_subparsers(dest="action", required=True)
    serve = admin_sub.add_parser("serve", help="serve the admin API until SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", help="overrides TIDINGS_LOG_LEVEL")
    serve.set_defaults(handler=cmd_admin_serve)
