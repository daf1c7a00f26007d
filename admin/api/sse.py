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


def error_frame(code: str, message: str) -> bytes:
    """Why the server is about to close the connection."""
    return b"event: error\ndata: %s\n\n" % orjson.dumps({"code": code, "message": message})


def retry_frame(milliseconds: int) -> bytes:
    """How long an EventSource waits before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def comment_frame(text: str) -> bytes:
    """A comment line (ignored by clients): keeps idle connections and proxies alive."""
    return b": %s\n\n" % text.encode()
