"""The admin HTTP API: manage streams, inspect deliveries, redeliver, send test events.

Backed by Kafka alone (the registry, delivery-log and dead-letter topics, replayed into an
in-memory view); see :mod:`admin.api.view` for why, and :mod:`admin.api.app` to run it.
"""

from __future__ import annotations

from admin.api.app import build_app, serve
from admin.api.cli import register_cli

__all__ = ["build_app", "register_cli", "serve"]
