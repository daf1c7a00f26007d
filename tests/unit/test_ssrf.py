"""The outbound policy: which webhook endpoints may be called."""

from __future__ import annotations

import ipaddress

import pytest

from dispatcher.ssrf import DestinationPolicy, DestinationRefusedError, forbidden_address


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fd00:ec2::254", True),  # AWS metadata over IPv6
        ("fe80::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),  # IPv4-mapped, whatever it maps
        ("::8.8.8.8", True),  # IPv4-compatible (deprecated)
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64, whatever it translates
        ("64:ff9b:1::a00:1", True),  # NAT64, local-use prefix
        ("2002:7f00:1::1", True),  # 6to4
        ("2001:0:4136:e378::1", True),  # Teredo
        ("fec0::1", True),  # site-local (deprecated)
        ("feff::1", True),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    """Every non-public address is forbidden; public ones are not."""
    assert forbidden_address(ipaddress.ip_address(address)) is forbidden


@pytest.mark.parametrize(
    ("allowlist", "url", "allowed"),
    [
        ([], "https://hooks.example.com/x", True),
        ([], "http://hooks.example.com/x", False),  # https required
        (["hooks.example.com"], "http://hooks.example.com/x", True),
        ([], "https://127.0.0.1/x", False),
        ([], "https://[::1]/x", False),
        ([], "https://169.254.169.254/latest/meta-data", False),
        (["127.0.0.1"], "http://127.0.0.1:8080/x", True),
        (["10.0.0.0/8"], "https://10.2.3.4/x", True),
        (["10.0.0.0/8"], "http://10.2.3.4/x", True),
        (["10.0.0.0/8"], "https://192.168.0.1/x", False),
    ],
)
def test_check_url(allowlist: list[str], url: str, allowed: bool) -> None:
    """URLs are refused for plain http or non-public IP literals unless allowlisted."""
    policy = DestinationPolicy(allowlist)
    if allowed:
        policy.check_url(url)
    else:
        with pytest.raises(DestinationRefusedError):
            policy.check_url(url)


async def test_check_endpoint_resolves_names() -> None:
    """A name that resolves to loopback is refused at creation unless allowlisted."""
    with pytest.raises(DestinationRefusedError, match="non-public"):
        await DestinationPolicy().check_endpoint("https://localhost/hook")
    await DestinationPolicy(["localhost"]).check_endpoint("https://localhost/hook")
    await DestinationPolicy(["127.0.0.0/8"]).check_endpoint("https://localhost/hook")
