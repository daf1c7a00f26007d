"""free_port(): ports for the test's own servers, out of the way of outgoing connections."""

from __future__ import annotations

import socket
from pathlib import Path

from admin.broker import free_port


def test_free_ports_lie_below_the_ephemeral_range_and_come_in_free_pairs() -> None:
    """Each port and the next one bind, and both lie below the kernel's ephemeral range, from
    which outgoing connections take their local ports (so none can take ours meanwhile)."""
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1, "drawn at random, not one fixed port"
    for port in ports:
        assert port + 1 < first_ephemeral
        for candidate in (port, port + 1):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", candidate))
