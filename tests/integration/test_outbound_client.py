"""The webhook client connects to exactly the host the outbound guard checked: real requests
over 127.0.0.1 through the client the dispatcher builds, pinned the way the dispatcher pins
it. If the client read a URL's host differently from the guard, its lookup would miss the
pin and go to the system resolver instead (which knows none of these names)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.ssrf import DestinationPolicy, DestinationRefusedError
from dispatcher.webhook import HttpClients


class _HostRecorder(BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[int, list[str]]]:
    """A plain HTTP server on 127.0.0.1 that records each request's Host header."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _HostRecorder.hosts
    finally:
        server.shutdown()
        server.server_close()


LABEL = st.text(alphabet=st.sampled_from("abcXYZ09-üßжλ\uff0e"), min_size=1, max_size=10).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
HOSTS = st.builds(
    lambda labels, percent, dot: (
        "".join(f"%{ord(c):02x}" if percent and c in "abc" else c for c in ".".join(labels))
        + ".test"
        + dot
    ),
    st.lists(LABEL, min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from(["", "."]),
)
TRICKS = st.sampled_from(["", "#@decoy.test", "?@decoy.test", "/@decoy.test", "/..%2f@decoy"])


async def _post(url: str, host: str, scheme: str, port: int) -> int:
    clients = HttpClients()
    origin = (scheme, host, port, "127.0.0.1")
    client = clients.acquire(origin)
    try:
        request = client.post(url).body_bytes(b"{}").timeout(timedelta(seconds=5)).build()
        response = await request.send()
        return response.status
    finally:
        await clients.release(origin)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(host=HOSTS, trick=TRICKS)
def test_the_client_connects_to_the_host_the_guard_checked(
    recorder: tuple[int, list[str]], host: str, trick: str
) -> None:
    """IDNA, percent-encoded and mixed-case names, trailing dots, and text after the host
    that names another one: a request pinned to the checked host arrives, carrying that
    host (never the decoy) in its Host header."""
    port, hosts = recorder
    policy = DestinationPolicy(["0.0.0.0/0", "::/0", "decoy.test"])
    try:
        endpoint = policy.check_url(f"http://{host}:{port}{trick}")
    except DestinationRefusedError:
        return
    assert endpoint.address is None
    hosts.clear()
    status = asyncio.run(_post(endpoint.url, endpoint.host, endpoint.scheme, endpoint.port))
    assert status == 204
    assert hosts == [f"{endpoint.host}:{port}"]
    assert "decoy" not in endpoint.host
