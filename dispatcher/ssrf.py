"""Outbound safety for destination endpoints (server-side request forgery guard).

An endpoint may not reach private, loopback, link-local (which includes the cloud metadata
address 169.254.169.254), unique-local or other non-public addresses, nor IPv6 forms that
carry or translate to an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo),
and must use https, unless the allowlist (``TIDINGS_DESTINATION_ALLOWLIST``: hosts or CIDRs)
permits it. The check runs when a stream is created and again whenever the dispatcher
resolves the host for delivery; connections then go only to the addresses that passed (the
webhook client pins them), because DNS can change between the check and the connection.

One URL parser serves the check and the connection: :func:`parse_endpoint` parses with the
parser of the webhook HTTP client itself (pyreqwest's ``Url``, Rust's WHATWG ``url`` crate),
and the client is handed the URL that parse serializes. So the host checked is the host
connected to, whatever the text: percent-encoded or non-ASCII hosts (IDNA is applied before
the check), IPv4 in decimal, octal or hex, or userinfo tricks. Backslashes, spaces and
control characters, which that parser would silently rewrite or drop, are refused outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pyreqwest.http import Url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: How long a name may take to resolve when a stream is created.
RESOLVE_TIMEOUT: Final = 5.0
#: Characters a URL parser would rewrite (``\\`` becomes ``/`` in http URLs) or silently drop
#: (tabs, newlines): refused, so that what is stored reads as what is called.
_UNSAFE_CHARACTERS: Final = re.compile(r"[\x00-\x20\x7f\\]")
#: IPv6 ranges that embed or translate to an IPv4 address (or are deprecated site-local
#: space): refused whatever they embed, since the IPv4 side is not what was checked.
_EMBEDDING_V4: Final = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::/96",  # IPv4-compatible (deprecated)
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local use
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "fec0::/10",  # site-local (deprecated)
    )
)
#: getaddrinfo errors that mean "this name has no address" rather than "ask again later".
_NO_SUCH_NAME: Final = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


class DestinationRefusedError(OSError):
    """The endpoint is not allowed: the message says why."""


class NameNotResolvingError(DestinationRefusedError):
    """The endpoint's host has no address (yet)."""


class ResolverUnavailableError(OSError):
    """The host could not be resolved now (a temporary resolver failure or a timeout)."""


@dataclass(frozen=True)
class Endpoint:
    """An endpoint URL as the HTTP client reads it."""

    #: The URL serialized by the client's own parser: what requests are sent to.
    url: str
    scheme: str
    #: The host the client connects to or resolves: an ASCII (IDNA) lower-case domain, or
    #: an IP address without brackets.
    host: str
    port: int
    #: The host as an address when it is an IP literal (in any notation the parser accepts).
    address: IPAddress | None


def parse_endpoint(text: str) -> Endpoint:
    """Parse an absolute http(s) URL without credentials, the way the webhook client does.
    Raises :class:`ValueError` saying why (never quoting the URL)."""
    if _UNSAFE_CHARACTERS.search(text):
        raise ValueError("must not contain spaces, control characters or backslashes")
    try:
        url = Url(text)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    host = url.host_str
    if url.scheme not in {"http", "https"} or not host:
        raise ValueError("must be an absolute http(s) URL")
    if url.username or url.password is not None:
        raise ValueError("credentials in the URL are not allowed: use webhook_authorization")
    host = host.removeprefix("[").removesuffix("]")
    try:
        address: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    port = url.port_or_known_default
    assert port is not None  # http and https have default ports
    return Endpoint(str(url), url.scheme, host, port, address)


def forbidden_address(address: IPAddress) -> bool:
    """True for every address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address) and any(
        address in network for network in _EMBEDDING_V4
    ):
        return True
    return not address.is_global or address.is_multicast


def _host_key(host: str) -> str:
    """A host name as compared with the allowlist: as the parser writes it (IDNA, lower
    case), without a trailing dot."""
    with contextlib.suppress(ValueError):
        host = Url(f"http://{host}/").host_str or host
    return host.lower().rstrip(".")


class DestinationPolicy:
    """Which endpoints destinations may call."""

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allowlist):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(_host_key(entry))

    def _listed(self, host: str, address: IPAddress | None = None) -> bool:
        if _host_key(host) in self.hosts:
            return True
        if address is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
        return any(address in network for network in self.networks)

    def check_url(self, url: str) -> Endpoint:
        """Refuse a URL by its text alone: its form, its scheme, and its host when that is
        an IP literal. Returns the endpoint as the client will call it."""
        try:
            endpoint = parse_endpoint(url)
        except ValueError as exc:
            raise DestinationRefusedError(str(exc)) from None
        if endpoint.scheme != "https" and not self._listed(endpoint.host, endpoint.address):
            raise DestinationRefusedError(
                f"{endpoint.scheme}:// is not allowed for {endpoint.host}: use https:// "
                "(or allowlist the host in TIDINGS_DESTINATION_ALLOWLIST)"
            )
        if endpoint.address is not None:
            self.check_address(endpoint.host, endpoint.address)
        return endpoint

    def check_address(self, host: str, address: IPAddress) -> None:
        """Refuse a connection to a non-public address that the allowlist does not permit."""
        if forbidden_address(address) and not self._listed(host, address):
            raise DestinationRefusedError(
                f"{host} resolves to {address}, a private, loopback, link-local or otherwise "
                "non-public address (allowlist it in TIDINGS_DESTINATION_ALLOWLIST)"
            )

    async def check_endpoint(self, url: str) -> Endpoint:
        """The full check made when a stream is created: the URL, then every address its
        host resolves to now. Raises :class:`DestinationRefusedError` (its subclass
        :class:`NameNotResolvingError` when the name has no address) or
        :class:`ResolverUnavailableError`."""
        endpoint = self.check_url(url)
        if endpoint.address is not None:
            return endpoint
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                await self.checked_addresses(endpoint.host)
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                raise NameNotResolvingError(f"{endpoint.host} does not resolve") from None
            raise ResolverUnavailableError(f"{endpoint.host} cannot be resolved now") from None
        except TimeoutError:
            raise ResolverUnavailableError(f"{endpoint.host} did not resolve in time") from None
        return endpoint

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


class CheckingResolver(AbstractResolver):
    """An aiohttp resolver that refuses a name resolving to an address the policy forbids,
    at connection time (the EventBridge client's aiohttp connector resolves through it, so a
    DNS change after the check at creation cannot steer it anywhere else either)."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and check every address; raises DestinationRefusedError."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._policy.check_address(host, ipaddress.ip_address(result["host"]))
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()
