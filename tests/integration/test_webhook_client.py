"""The webhook client against a real HTTP receiver on 127.0.0.1: connections go only to the
addresses the outbound policy checked, and closing waits for attempts in flight."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatch_kit import webhook_stream
from dispatcher import webhook
from dispatcher.destinations import Delivery
from dispatcher.jobs import Job
from dispatcher.outcome import OutcomeKind
from dispatcher.ssrf import DestinationPolicy, DestinationRefusedError
from receiver import Receiver

#: A name no DNS server resolves (RFC 2606): only the pinned address can reach the receiver.
UNRESOLVABLE = "receiver.tidings.invalid"


class ScriptedDns(DestinationPolicy):
    """A policy whose name lookups return scripted answers (addresses, or an error to raise)."""

    def __init__(self, answers: list[list[str] | Exception]) -> None:
        super().__init__([UNRESOLVABLE])
        self.answers = answers
        self.lookups = 0

    async def checked_addresses(self, host: str) -> list[str]:
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def delivery(body: bytes = b'{"id":"evt_1"}') -> Delivery:
    job = Job(stream_id="est_1", event_id="evt_1", event_type="user.created", value=b"", key=None)
    return Delivery(job, body)


async def test_a_named_host_is_reached_only_at_its_checked_address(receiver: Receiver) -> None:
    """The client connects to the address the policy returned for the name, although no DNS
    server knows the name: the policy's answer is the only route."""
    policy = ScriptedDns([["127.0.0.1"]])
    client = webhook.WebhookClient(
        webhook_stream(f"http://{UNRESOLVABLE}:{receiver.port}/named"),
        policy,
        webhook.HttpClients(),
    )
    try:
        outcomes = await client.deliver([delivery()])
        assert [o.kind for o in outcomes] == [OutcomeKind.SUCCESS]
        assert [r.path for r in receiver.requests] == ["named"]
        assert receiver.requests[0].headers["Host"] == f"{UNRESOLVABLE}:{receiver.port}"
        assert policy.lookups == 1, "the checked resolution is reused within its TTL"
    finally:
        await client.close()


async def test_a_refused_re_resolution_stops_deliveries(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the TTL has passed the name is checked again; when it now points somewhere
    forbidden the attempt is refused (permanent) and nothing is sent."""
    monkeypatch.setattr(webhook, "RESOLVE_TTL", 0.0)
    refusal = DestinationRefusedError("resolves to 10.0.0.1, a private address")
    policy = ScriptedDns([["127.0.0.1"], refusal])
    client = webhook.WebhookClient(
        webhook_stream(f"http://{UNRESOLVABLE}:{receiver.port}/named"),
        policy,
        webhook.HttpClients(),
    )
    try:
        first, second = [(await client.deliver([delivery()]))[0] for _ in range(2)]
    finally:
        await client.close()
    assert first.kind is OutcomeKind.SUCCESS
    assert second.kind is OutcomeKind.PERMANENT
    assert second.error is not None
    assert "destination refused" in second.error
    assert len(receiver.requests) == 1


async def test_an_unresolvable_name_is_retryable(receiver: Receiver) -> None:
    """A DNS failure is a retryable outcome naming the host, not a refusal."""
    policy = ScriptedDns([socket.gaierror(socket.EAI_NONAME, "Name or service not known")])
    client = webhook.WebhookClient(
        webhook_stream(f"http://{UNRESOLVABLE}/x"), policy, webhook.HttpClients()
    )
    try:
        (outcome,) = await client.deliver([delivery()])
    finally:
        await client.close()
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.error is not None
    assert f"cannot resolve {UNRESOLVABLE}" in outcome.error


async def test_a_slow_answer_past_the_timeout_is_a_retryable_timeout(receiver: Receiver) -> None:
    """An answer later than the stream's timeout is a timeout, and it is not waited for."""
    receiver.delay = 2.0
    client = webhook.WebhookClient(
        webhook_stream(receiver.url(), delivery={"timeout": "200ms"}),
        DestinationPolicy(["127.0.0.1"]),
        webhook.HttpClients(),
    )
    try:
        started = asyncio.get_running_loop().time()
        (outcome,) = await client.deliver([delivery()])
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await client.close()
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.error == "timeout after 0.2s"
    assert elapsed < 1.5


async def test_close_lets_attempts_in_flight_finish(receiver: Receiver) -> None:
    """Closing a client (a stream reconfigured or stopped) waits for its attempts in flight
    instead of failing them."""
    receiver.delay = 0.3
    client = webhook.WebhookClient(
        webhook_stream(receiver.url(), delivery={"timeout": timedelta(seconds=5)}),
        DestinationPolicy(["127.0.0.1"]),
        webhook.HttpClients(),
    )
    attempt = asyncio.create_task(client.deliver([delivery()]))
    await asyncio.sleep(0)  # the attempt starts before close is asked for
    await client.close()
    (outcome,) = await attempt
    assert outcome.kind is OutcomeKind.SUCCESS
    assert len(receiver.delivered()) == 1


async def test_streams_to_one_origin_share_a_client_that_the_last_one_closes(
    receiver: Receiver,
) -> None:
    """Two streams to the same receiver use one pooled client; it stays open while either
    stream still uses it."""
    clients = webhook.HttpClients()
    policy = DestinationPolicy(["127.0.0.1"])
    first = webhook.WebhookClient(webhook_stream(receiver.url("a")), policy, clients)
    second = webhook.WebhookClient(webhook_stream(receiver.url("b")), policy, clients)
    assert [o.kind for o in await first.deliver([delivery()])] == [OutcomeKind.SUCCESS]
    assert [o.kind for o in await second.deliver([delivery()])] == [OutcomeKind.SUCCESS]
    assert len(clients) == 1
    await first.close()
    assert len(clients) == 1
    assert [o.kind for o in await second.deliver([delivery()])] == [OutcomeKind.SUCCESS]
    await second.close()
    assert len(clients) == 0


async def test_requests_to_one_origin_are_capped(receiver: Receiver) -> None:
    """At most ``max_per_origin`` requests to an origin are in flight at once: six answers
    of 0.3 s through a cap of two take at least three rounds."""
    receiver.delay = 0.3
    client = webhook.WebhookClient(
        webhook_stream(receiver.url()),
        DestinationPolicy(["127.0.0.1"]),
        webhook.HttpClients(max_per_origin=2),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        outcomes = await client.deliver([delivery(b'{"id":"evt_%d"}' % i) for i in range(6)])
    finally:
        await client.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.SUCCESS] * 6
    assert loop.time() - started >= 0.9


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA, and a certificate for 127.0.0.1 that it signed: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Tidings test CA"))
        .issuer_name(name("Tidings test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_https_is_verified_against_the_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https endpoint whose certificate no trusted CA signed is not delivered to; once its
    CA is trusted (``SSL_CERT_FILE``, as for any private CA) it is."""
    ca, cert, key = _tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    receiver = Receiver()
    await receiver.start(ssl_context=context)
    url = f"https://127.0.0.1:{receiver.port}/tls"
    policy = DestinationPolicy(["127.0.0.1"])
    try:
        untrusted = webhook.WebhookClient(webhook_stream(url), policy, webhook.HttpClients())
        try:
            (refused,) = await untrusted.deliver([delivery()])
        finally:
            await untrusted.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        trusted = webhook.WebhookClient(webhook_stream(url), policy, webhook.HttpClients())
        try:
            (accepted,) = await trusted.deliver([delivery()])
        finally:
            await trusted.close()
    finally:
        await receiver.stop()
    assert refused.kind is OutcomeKind.RETRYABLE
    assert refused.error is not None
    assert "UnknownIssuer" in refused.error
    assert accepted.kind is OutcomeKind.SUCCESS
    assert [r.path for r in receiver.requests] == ["tls"]
