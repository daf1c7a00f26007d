"""The admin HTTP API: manage streams, inspect deliveries, redeliver, send test events.

Backed by Kafka: the registry topic replayed into an in-memory view (:mod:`admin.api.view`),
the delivery-log and dead-letter topics into the history store on disk (:mod:`admin.history`);
:mod:`admin.api.app` runs it.
"""

from __future__ import annotations

from admin.api.app import build_app, serve
from admin.api.cli import register_cli

__all__ = ["build_app", "register_cli", "serve"]
