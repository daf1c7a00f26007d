"""Outbound safety for webhook endpoints (server-side request forgery guard).

An endpoint may not reach private, loopback, link-local (which includes the cloud metadata
address 169.254.169.254), unique-local or other non-public addresses, and must use https,
unless the allowlist (``TIDINGS_DESTINATION_ALLOWLIST``: hosts or CIDRs) permits it. The
check runs when a stream is created and again whenever the dispatcher resolves the host for
delivery; connections then go only to the addresses that passed (the webhook client pins
them), because DNS can change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefusedError(OSError):
    """The endpoint is not allowed: the message says why."""


def forbidden_address(address: IPAddress) -> bool:
    """True for every address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


class DestinationPolicy:
    """Which endpoints webhooks may call."""

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allowlist):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def _listed(self, host: str, address: IPAddress | None = None) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        if address is None:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return False
        return any(address in network for network in self.networks)

    def check_url(self, url: str) -> None:
        """Refuse a URL by its text alone: scheme, and the host when it is an IP literal."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https" and not self._listed(host):
            raise DestinationRefusedError(
                f"{parts.scheme}:// is not allowed for {host}: use https:// "
                "(or allowlist the host in TIDINGS_DESTINATION_ALLOWLIST)"
            )
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return
        self.check_address(host, literal)

    def check_address(self, host: str, address: IPAddress) -> None:
        """Refuse a connection to a non-public address that the allowlist does not permit."""
        if forbidden_address(address) and not self._listed(host, address):
            raise DestinationRefusedError(
                f"{host} resolves to {address}, a private, loopback, link-local or otherwise "
                "non-public address (allowlist it in TIDINGS_DESTINATION_ALLOWLIST)"
            )

    async def check_endpoint(self, url: str) -> None:
        """The full check made when a stream is created: the URL, then every address its
        host resolves to now."""
        self.check_url(url)
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
            return
        except ValueError:
            pass
        try:
            await self.checked_addresses(host)
        except socket.gaierror as exc:
            raise DestinationRefusedError(f"{host} does not resolve: {exc}") from exc

    async def checked_addresses(self, host: str) -> list[str]:
        """Resolve a host name and return its addresses, refusing the host if any of them
        is forbidden. Raises :class:`socket.gaierror` when the name does not resolve."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        addresses: list[str] = []
        for info in infos:
            address = str(info[4][0])
            self.check_address(host, ipaddress.ip_address(address))
            if address not in addresses:
                addresses.append(address)
        return addresses
