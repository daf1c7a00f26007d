"""Server-Sent Events framing (the WHATWG ``text/event-stream`` format), as bytes.

Each frame is complete and ends with a blank line. Field values never hold a newline: the
JSON is rendered compact (orjson escapes newlines inside strings), and cursors and event
types are ASCII tokens.
"""

from __future__ import annotations

import orjson


def event_frame(event_type: str, cursor: str, event_json: bytes) -> bytes:
    """One lifecycle event, shaped like Auth0's: ``data`` holds the cursor and the event."""
    return b"".join(
        (
            b"event: ",
            event_type.encode(),
            b"\nid: ",
            cursor.encode(),
            b'\ndata: {"offset":"',
            cursor.encode(),
            b'","event":',
            event_json,
            b"}\n\n",
        )
    )


def offset_only_frame(cursor: str) -> bytes:
    """The current cursor while no event matched: a client that reconnects resumes there."""
    return b"event: offset-only\nid: %s\ndata: %s\n\n" % (
        cursor.encode(),
        orjson.dumps({"offset": cursor}),
    )


#: Auth0's codes for an ``event: error``: the server cycles the connection (or stops), and a
#: failure while reading events. A client reconnects with ``Last-Event-ID`` after either.
CONNECTION_TIMEOUT = "connection_timeout"
PROCESSING_ERROR = "processing_error"


def error_frame(code: str, message: str, cursor: str | None = None) -> bytes:
    """Why the server is about to close the connection, shaped like Auth0's:
    ``{"error": {"code", "message", "offset"}}``, the offset being the cursor to resume at."""
    detail = {"code": code, "message": message}
    if cursor is not None:
        detail["offset"] = cursor
    return b"event: error\ndata: %s\n\n" % orjson.dumps({"error": detail})


def connected_frame() -> bytes:
    """The comment that opens every stream, as Auth0's does: the connection is established."""
    return b":connected\n\n"


def retry_frame(milliseconds: int) -> bytes:
    """How long an EventSource waits before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def comment_frame(text: str) -> bytes:
    """A comment line (ignored by clients): keeps idle connections and proxies alive."""
    return b": %s\n\n" % text.encode()
