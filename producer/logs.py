"""Structured logging for every Tidings process: JSON off a terminal, readable on one.

A processor redacts secrets by key name before anything is rendered, so a secret passed as
log context by mistake never reaches the output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("token", "password", "secret", "authorization", "api_key", "header_value")
REDACTED = "[redacted]"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret_key(str(k)) and v is not None else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_KEYS)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace the value of any secret-named key, at any depth."""
    for key, value in list(event_dict.items()):
        if _is_secret_key(key) and value is not None:
            event_dict[key] = REDACTED
        elif isinstance(value, dict | list | tuple):
            event_dict[key] = _redact(value)
    return event_dict


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Set up structlog; ``json=None`` picks JSON unless stderr is a terminal."""
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
