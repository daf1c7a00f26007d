"""Property tests of the outbound policy over generated URL forms: every notation of a
forbidden address is refused, and what the guard accepts it reads the way the HTTP client
does (one parser, a stable normal form)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from pyreqwest.http import Url

from dispatcher.ssrf import DestinationPolicy, DestinationRefusedError, parse_endpoint

FORBIDDEN_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
    )
]
FORBIDDEN_V6 = [
    ipaddress.IPv6Network(n)
    for n in ("::1/128", "fe80::/10", "fc00::/7", "fec0::/10", "ff00::/8", "::ffff:0:0/96")
]
#: Characters IDNA maps to ASCII digits and dots (fullwidth forms, ideographic full stop).
FULLWIDTH = {**{str(d): chr(0xFF10 + d) for d in range(10)}, ".": "\uff0e"}


@st.composite
def addresses_in(draw: st.DrawFn, networks: list[ipaddress._BaseNetwork]) -> int:  # type: ignore[type-arg]
    network = draw(st.sampled_from(networks))
    return int(network[draw(st.integers(0, network.num_addresses - 1))])


def _number(value: int, form: str) -> str:
    if form == "oct":
        return "0" + format(value, "o")
    if form == "hex":
        return "0x" + format(value, "x")
    if form == "HEX":
        return "0X" + format(value, "X")
    return str(value)


@st.composite
def ipv4_notations(draw: st.DrawFn) -> str:
    """A forbidden IPv4 address as an http URL parser accepts it: 1 to 4 parts, each in
    decimal, octal or hex, maybe a trailing dot, maybe percent-encoded or fullwidth."""
    value = draw(addresses_in(FORBIDDEN_V4))
    octets = list(value.to_bytes(4, "big"))
    shape = draw(st.sampled_from([4, 3, 2, 1]))
    parts = {
        4: octets,
        3: [octets[0], octets[1], value & 0xFFFF],
        2: [octets[0], value & 0xFFFFFF],
        1: [value],
    }[shape]
    forms = st.sampled_from(["dec", "oct", "hex", "HEX"])
    text = ".".join(_number(part, draw(forms)) for part in parts)
    if draw(st.booleans()):
        text += "."
    disguise = draw(st.sampled_from(["none", "percent", "fullwidth"]))
    if disguise == "percent":
        text = "".join(f"%{ord(c):02x}" if c.isdigit() and draw(st.booleans()) else c for c in text)
    elif disguise == "fullwidth":
        text = "".join(FULLWIDTH.get(c, c) if draw(st.booleans()) else c for c in text)
    return text


@st.composite
def ipv6_notations(draw: st.DrawFn) -> str:
    """A forbidden IPv6 address, or one embedding a forbidden IPv4 address (mapped,
    compatible, NAT64), compressed or exploded, in either case, in brackets."""
    kind = draw(st.sampled_from(["v6", "mapped", "mapped-dotted", "nat64", "compatible"]))
    if kind == "v6":
        address = ipaddress.IPv6Address(draw(addresses_in(FORBIDDEN_V6)))
        text = address.exploded if draw(st.booleans()) else address.compressed
    else:
        v4 = ipaddress.IPv4Address(draw(addresses_in(FORBIDDEN_V4)))
        high, low = int(v4) >> 16, int(v4) & 0xFFFF
        text = {
            "mapped": f"::ffff:{high:x}:{low:x}",
            "mapped-dotted": f"::ffff:{v4}",
            "nat64": f"64:ff9b::{v4}",
            "compatible": f"::{v4}",
        }[kind]
    if draw(st.booleans()):
        text = text.upper()
    return f"[{text}]"


@st.composite
def urls_around(draw: st.DrawFn, hosts: st.SearchStrategy[str]) -> str:
    """An http(s) URL around a host: scheme in any case, maybe a port and a path, maybe a
    userinfo or backslash trick that puts another host in the text."""
    host = draw(hosts)
    scheme = draw(st.sampled_from(["https", "HTTPS", "hTTpS", "http"]))
    port = draw(st.sampled_from(["", ":443", ":8443", ":80"]))
    path = draw(st.sampled_from(["", "/", "/hook", "/a?b=c"]))
    trick = draw(st.sampled_from(["none", "userinfo", "decoy-userinfo", "backslash"]))
    if trick == "userinfo":
        return f"{scheme}://user:pw@{host}{port}{path}"
    if trick == "decoy-userinfo":
        return f"{scheme}://hooks.example.com@{host}{port}{path}"
    if trick == "backslash":
        return f"{scheme}://{host}{port}\\@hooks.example.com{path}"
    return f"{scheme}://{host}{port}{path}"


@settings(max_examples=250, deadline=None, database=None)
@given(urls_around(st.one_of(ipv4_notations(), ipv6_notations())))
def test_every_notation_of_a_forbidden_address_is_refused(url: str) -> None:
    """Decimal, octal, hex, short, percent-encoded and fullwidth IPv4; IPv6 and IPv4-mapped,
    compatible and NAT64 forms; trailing dots, userinfo and backslash tricks: refused."""
    policy = DestinationPolicy([])
    try:
        endpoint = policy.check_url(url)
    except DestinationRefusedError:
        return
    raise AssertionError(f"{url!r} was accepted as {endpoint}")


LABEL = st.text(
    alphabet=st.sampled_from("abcXYZ019-üßжλ%\uff0e\u3002"), min_size=1, max_size=12
).filter(lambda s: not s.startswith("-"))


@st.composite
def host_texts(draw: st.DrawFn) -> str:
    """Host text a user might type or an attacker craft: mixed case, IDNA, fullwidth dots,
    stray percent signs, percent-encoded letters, numbers, trailing dots."""
    labels = draw(st.lists(LABEL, min_size=1, max_size=3))
    host = ".".join(labels)
    if draw(st.booleans()):
        host = "".join(f"%{ord(c):02X}" if c.isalpha() and c.isascii() else c for c in host)
    return host + draw(st.sampled_from(["", ".test", ".test.", ".1", ".0x7f"]))


@settings(max_examples=250, deadline=None, database=None)
@given(st.one_of(urls_around(host_texts()), urls_around(ipv4_notations()), st.text(max_size=40)))
def test_what_the_guard_accepts_is_what_the_client_reads(url: str) -> None:
    """Either the guard refuses the URL, or: the host it checked is the host of the URL it
    hands the client (read again by the client's parser), that host is ASCII, and the
    normal form is stable (storing it and reading it back changes nothing)."""
    policy = DestinationPolicy(["0.0.0.0/0", "::/0"])  # address checks aside: parsing only
    try:
        endpoint = policy.check_url(url)
    except DestinationRefusedError:
        return
    client_url = Url(endpoint.url)
    host = (client_url.host_str or "").removeprefix("[").removesuffix("]")
    assert host == endpoint.host
    assert endpoint.host.isascii()
    assert client_url.port_or_known_default == endpoint.port
    assert parse_endpoint(endpoint.url) == endpoint
    if endpoint.address is not None:
        assert ipaddress.ip_address(endpoint.host) == endpoint.address
