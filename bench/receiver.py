"""A fast webhook receiver for the end-to-end benchmark, run as its own process.

A raw asyncio HTTP/1.1 server (keep-alive, ``Content-Length`` bodies only): a full framework
would make the receiver, not the dispatcher, the thing being measured. It reads the CloudEvent
``id`` and ``time`` from each body and records when each event id first arrived, so the
harness can compute produce→receive latency (receipt time minus the event's ``time``, set by
the producer at creation; ``time`` has millisecond precision, so latencies read up to 1 ms
high). Answers are scripted by the first path segment:

* ``POST /ok/<tag>`` answers 200;
* ``POST /dead/<tag>`` never answers (a dead endpoint: the dispatcher's timeout fires);
* ``POST /fail/<tag>`` answers 503 until ``POST /control/recover``, then 200
  (``POST /control/fail`` makes it fail again).

Control and results, for the harness (:class:`ReceiverControl` is its client):

* ``GET /stats``: per tag, distinct ids answered 200, 200-answers in all, failed answers,
  requests left hanging, and ids attempted again while failing;
* ``GET /records``: per tag, ``[receipt_time, latency_ms]`` of each id's first 200 answer;
* ``POST /control/reset``: forget every record (hanging requests stay hanging).

    python bench/receiver.py [--port 0]    # prints "listening <port>" once ready
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_ID = b'"id":"'
_TIME = b'"time":"'


def _json_response(payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def event_id_and_time(body: bytes) -> tuple[str, float | None]:
    """The CloudEvent's ``id`` and ``time`` (epoch seconds) from a delivery body.

    Tidings renders ``id`` and ``time`` right after ``specversion``, ``type`` and ``source``, so
    the first occurrences of the two keys are the envelope's; anything else is parsed fully.
    """
    start = body.find(_ID, 0, 512)
    if start >= 0:
        start += len(_ID)
        end = body.find(b'"', start)
        at = body.find(_TIME, end, end + 64)
        if at >= 0:
            at += len(_TIME)
            stamp = body[at : body.find(b'"', at)].decode()
            return body[start:end].decode(), datetime.fromisoformat(stamp).timestamp()
    obj = json.loads(body)
    stamp = obj.get("time")
    return str(obj["id"]), datetime.fromisoformat(stamp).timestamp() if stamp else None


@dataclass
class Recorder:
    """Everything the receiver saw, and whether ``/fail/`` paths have recovered."""

    recovered: bool = False
    first_ok: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    ok_answers: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    hanging: Counter[str] = field(default_factory=Counter)
    failed_ids: set[str] = field(default_factory=set)
    retried_while_failing: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Forget every record; the recovered flag stays as it is."""
        self.first_ok.clear()
        self.ok_answers.clear()
        self.failed.clear()
        self.hanging.clear()
        self.failed_ids.clear()
        self.retried_while_failing.clear()

    def delivery(self, kind: str, tag: str, body: bytes) -> bytes | None:
        """Record one delivery and return the answer (``None``: leave the request hanging)."""
        now = time.time()
        if kind == "dead":
            self.hanging[tag] += 1
            return None
        event_id, event_time = event_id_and_time(body)
        if kind == "fail" and not self.recovered:
            self.failed[tag] += 1
            if event_id in self.failed_ids:
                self.retried_while_failing[tag] += 1
            self.failed_ids.add(event_id)
            return _UNAVAILABLE
        self.ok_answers[tag] += 1
        seen = self.first_ok.setdefault(tag, {})
        if event_id not in seen:
            latency = (now - event_time) * 1000 if event_time is not None else float("nan")
            seen[event_id] = (now, latency)
        return _OK

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per tag."""
        tags = set(self.first_ok) | set(self.failed) | set(self.hanging)
        return {
            tag: {
                "distinct_ok": len(self.first_ok.get(tag, ())),
                "ok_answers": self.ok_answers[tag],
                "failed": self.failed[tag],
                "hanging": self.hanging[tag],
                "retried_while_failing": self.retried_while_failing[tag],
            }
            for tag in sorted(tags)
        }

    def records(self) -> dict[str, list[tuple[float, float]]]:
        """Per tag, ``(receipt_time, latency_ms)`` of each id's first 200 answer."""
        return {tag: list(seen.values()) for tag, seen in self.first_ok.items()}

    def control(self, method: bytes, path: str) -> bytes:
        """Answer a control or results request."""
        if method == b"GET" and path == "/stats":
            return _json_response(self.stats())
        if method == b"GET" and path == "/records":
            return _json_response(self.records())
        if method == b"POST" and path == "/control/reset":
            self.reset()
            return _json_response({})
        if method == b"POST" and path in ("/control/recover", "/control/fail"):
            self.recovered = path == "/control/recover"
            return _json_response({"recovered": self.recovered})
        return _NOT_FOUND


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection: frames requests by ``Content-Length`` and answers them."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.hanging = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.hanging:
            return  # a dead endpoint reads nothing more on this connection
        self.buffer += data
        while self.transport is not None and not self.hanging:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = _content_length(head)
            if length is None:
                self.transport.write(_LENGTH_REQUIRED)
                self.transport.close()
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            answer = self._answer(head, body)
            if answer is None:
                self.hanging = True
            else:
                self.transport.write(answer)

    def _answer(self, head: bytes, body: bytes) -> bytes | None:
        method, target, _version = head.split(b"\r\n", 1)[0].split(b" ", 2)
        path = target.decode().split("?", 1)[0]
        kind, _, tag = path.lstrip("/").partition("/")
        if method == b"POST" and kind in ("ok", "dead", "fail"):
            return self.recorder.delivery(kind, tag or kind, body)
        return self.recorder.control(method, path)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _content_length(head: bytes) -> int | None:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        return None if b"\r\ntransfer-encoding:" in lowered else 0
    end = lowered.find(b"\r\n", at + 2)
    return int(lowered[at + 17 : end if end >= 0 else len(lowered)])


async def serve(port: int) -> None:
    """Listen on 127.0.0.1 until killed; print the port once ready."""
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(recorder), "127.0.0.1", port, backlog=4096
    )
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class ReceiverControl:
    """The harness's side: starts ``bench/receiver.py`` as a child process and talks to it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> ReceiverControl:
        """Start the process and wait until it listens."""
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def pid(self) -> int:
        """The receiver process's id."""
        assert self.process is not None
        return self.process.pid

    def url(self, kind: str, tag: str) -> str:
        """The URL of a scripted path, e.g. ``url("ok", "s0")``."""
        return f"http://127.0.0.1:{self.port}/{kind}/{tag}"

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per tag (see ``GET /stats``)."""
        result: dict[str, dict[str, int]] = self._call("GET", "/stats")
        return result

    def records(self) -> dict[str, list[tuple[float, float]]]:
        """Per tag, ``(receipt_time, latency_ms)`` of each id's first 200 answer."""
        raw: dict[str, list[list[float]]] = self._call("GET", "/records")
        return {tag: [(r[0], r[1]) for r in rows] for tag, rows in raw.items()}

    def reset(self) -> None:
        """Forget every record."""
        self._call("POST", "/control/reset")

    def recover(self, recovered: bool = True) -> None:
        """Make ``/fail/`` paths answer 200 (or 503 again with ``recovered=False``)."""
        self._call("POST", "/control/recover" if recovered else "/control/fail")

    def stop(self) -> None:
        """Stop the process. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def main() -> int:
    """Entry point: serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
