"""The OpenAPI path item of ``GET /v1/events``: a stream, so written out here rather than
generated from response models."""

from __future__ import annotations

from typing import Any, Final

from admin.api.events_request import ACCESS_TOKEN_PARAM

_ERROR: Final = {"$ref": "#/components/schemas/ErrorOut"}

#: The route's OpenAPI path item (a stream, so written here rather than from models).
OPENAPI_PATH_ITEM: Final[dict[str, Any]] = {
    "get": {
        "operationId": "stream_events",
        "summary": "Lifecycle events over Server-Sent Events, resumable by cursor",
        "description": (
            'Each event is `event: <type>`, `id: <cursor>`, `data: {"offset": <cursor>, '
            '"event": <CloudEvent>}`. While no event matches, heartbeat comments and '
            '`offset-only` events (`data: {"offset": <cursor>}`) keep the cursor current. '
            "A stream opens with the `:connected` comment and a `retry:` hint. `event: error` "
            '(`data: {"error": {"code", "message", "offset"}}`; codes `connection_timeout` when '
            "the server cycles the connection, `processing_error` when reading events failed) "
            "precedes a close by the server. Resume with `Last-Event-ID` (wins) or `from`."
        ),
        "tags": ["events"],
        "security": [{"bearer": []}],
        "parameters": [
            {
                "name": "from",
                "in": "query",
                "required": False,
                "description": "Resume exactly after the event whose cursor this is.",
                "schema": {"type": "string"},
            },
            {
                "name": "from_timestamp",
                "in": "query",
                "required": False,
                "description": "Start at the first event at or after this time (RFC 3339 or "
                "epoch milliseconds). Without from or from_timestamp: new events only.",
                "schema": {"type": "string"},
            },
            {
                "name": "event_type",
                "in": "query",
                "required": False,
                "description": "Event types to receive (repeat it, at most 20; wildcards "
                "such as user.*). None: every type.",
                "schema": {"type": "array", "items": {"type": "string"}},
                "style": "form",
                "explode": True,
            },
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "The last cursor received; wins over from.",
                "schema": {"type": "string"},
            },
            {
                "name": ACCESS_TOKEN_PARAM,
                "in": "query",
                "required": False,
                "description": "The token, for a browser EventSource (which cannot send "
                "headers); prefer the Authorization header elsewhere.",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": {
                "description": "The event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **{
                str(status): {
                    "description": text,
                    "content": {"application/json": {"schema": _ERROR}},
                }
                for status, text in (
                    (400, "A malformed cursor, timestamp or event type (field names which)."),
                    (401, "No bearer token."),
                    (403, "Wrong bearer token."),
                    (
                        410,
                        "The cursor is older than the lifecycle topic's retention: use "
                        "from_timestamp.",
                    ),
                    (429, "Too many connections for this token (see Retry-After)."),
                    (503, "Kafka is not available."),
                )
            },
        },
    }
}
