"""A hostile webhook receiver: a raw HTTP/1.1 server on 127.0.0.1 whose every path answers
one kind of bad response (absurd ``Retry-After`` values, a redirect loop, a body that never
ends or never arrives, huge headers, a reset connection). Written on bare asyncio streams,
since a well-behaved server library would refuse to send most of these.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable

#: What each path answers. A behaviour gets the response writer, the path's URL and the
#: request's event id.
Behaviour = Callable[[asyncio.StreamWriter, str, str], Awaitable[None]]


def _status(code: int, reason: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {code} {reason}", *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def retry_after(value: str, code: int = 503) -> Behaviour:
    """Answer ``code`` with ``Retry-After: value``."""

    async def answer(writer: asyncio.StreamWriter, _url: str, _event: str) -> None:
        writer.write(_status(code, "Unavailable", [("Retry-After", value)], b"later"))
        await writer.drain()

    return answer


async def redirect_to_self(writer: asyncio.StreamWriter, url: str, _event: str) -> None:
    """A 302 pointing back at the same URL (a redirect loop, if anyone followed it)."""
    writer.write(_status(302, "Found", [("Location", url)]))
    await writer.drain()


async def endless_slow_body(writer: asyncio.StreamWriter, _url: str, _event: str) -> None:
    """200 with a body announced as a gigabyte that arrives one byte every 0.2 s."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
    await writer.drain()
    for _ in range(600):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.2)


async def huge_headers(writer: asyncio.StreamWriter, _url: str, _event: str) -> None:
    """503 with 2,000 headers of 200 bytes each (400 KB of headers)."""
    pad = "v" * 200
    writer.write(_status(503, "Unavailable", [(f"X-Pad-{i}", pad) for i in range(2000)]))
    await writer.drain()


async def gigabytes_of_body(writer: asyncio.StreamWriter, _url: str, _event: str) -> None:
    """500 with a body of gigabytes, sent as fast as the client takes it."""
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 8000000000\r\n\r\n")
    chunk = b"\0" * 65536
    for _ in range(120_000):  # bounded: 8 GB at most, stops when the client goes away
        writer.write(chunk)
        await writer.drain()


async def reset_mid_request(writer: asyncio.StreamWriter, _url: str, _event: str) -> None:
    """Close the connection with a TCP reset before answering."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def fail_once_slowly(pause: float, code: int = 503) -> Behaviour:
    """The first request of each event waits ``pause`` seconds, then gets ``code``; later
    ones get 200 (and count as delivered)."""
    failed: set[str] = set()

    async def answer(writer: asyncio.StreamWriter, url: str, event: str) -> None:
        if event in failed:
            await ok(writer, url, event)
            return
        failed.add(event)
        await asyncio.sleep(pause)
        writer.write(_status(code, "Unavailable", [], b"once"))
        await writer.drain()

    return answer


async def ok(writer: asyncio.StreamWriter, _url: str, _event: str) -> None:
    """A plain 200."""
    writer.write(_status(200, "OK", [], b"ok"))
    await writer.drain()


class HostileReceiver:
    """Serves ``behaviours`` by path; counts requests and 2xx answers per path and event."""

    def __init__(self, behaviours: dict[str, Behaviour]) -> None:
        self.behaviours = behaviours
        self.requests: Counter[str] = Counter()
        #: (path, event id) of every request that got a 200 from ``ok``.
        self.delivered: Counter[tuple[str, str]] = Counter()
        #: (path, event id, when) of every request, in arrival order.
        self.seen: list[tuple[str, str, float]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> HostileReceiver:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening (connections in progress are dropped)."""
        if self._server is not None:
            self._server.close()

    def url(self, path: str) -> str:
        """The URL of one behaviour."""
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _sep, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
                path = request_line.split(b" ")[1].decode().lstrip("/")
                self.requests[path] += 1
                behaviour = self.behaviours.get(path, ok)
                event = str(json.loads(body)["id"])
                self.seen.append((path, event, time.monotonic()))
                if behaviour is ok:
                    self.delivered[(path, event)] += 1
                await behaviour(writer, self.url(path), event)
                if behaviour is not ok:
                    return  # only a plain 200 keeps the connection
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
