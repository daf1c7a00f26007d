"""Webhook secrets are encrypted in the registry topic, and the key can be rotated."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from admin.cli import main
from dispatch_kit import webhook_stream
from dispatcher.registry import RegistryView, RegistryWriter
from dispatcher.secret_box import generate_key
from dispatcher.signing import generate_secret
from dispatcher.streams import BasicAuthorization, BearerAuthorization, Stream
from kafka_testkit import read_topic
from producer.config import Settings

TOKEN, PASSWORD, HEADER_VALUE = "tok-PLAIN-4242", "pw-PLAIN-4242", "hv-PLAIN-4242"


def streams_with_every_secret() -> list[Stream]:
    """One stream per authorization kind, all signed."""
    signing = generate_secret()
    auths = [
        {"method": "bearer", "token": TOKEN},
        {"method": "basic", "username": "ann", "password": PASSWORD},
        {"method": "custom_header", "header_key": "X-Key", "header_value": HEADER_VALUE},
    ]
    return [
        webhook_stream(
            "https://hooks.example.com/x",
            configuration={"webhook_authorization": auth},
            signing_secrets=[signing],
        )
        for auth in auths
    ]


def snapshot(settings: Settings) -> dict[str, Stream]:
    """The registry as a fresh view reads it."""

    async def read() -> dict[str, Stream]:
        view = RegistryView(settings)
        task = asyncio.create_task(view.run())
        await view.caught_up.wait()
        view.stop()
        await task
        return view.streams

    return asyncio.run(read())


def test_raw_registry_topic_holds_no_secret_in_clear(settings: Settings) -> None:
    """Tokens, passwords, header values and signing secrets are stored encrypted; a view
    with the key reads them back intact."""
    streams = streams_with_every_secret()
    writer = RegistryWriter(settings)
    for stream in streams:
        writer.put(stream)
    raw = b"".join(m.value() or b"" for m in read_topic(settings, settings.streams_topic, 3))
    signing = streams[0].signing_secrets[0].get_secret_value()
    for secret in (TOKEN, PASSWORD, HEADER_VALUE, signing, signing.removeprefix("whsec_")):
        assert secret.encode() not in raw
    assert raw.count(b"enc:v1:") == 6
    read_back = snapshot(settings)
    bearer = read_back[streams[0].id].destination.configuration.webhook_authorization  # type: ignore[union-attr]
    assert isinstance(bearer, BearerAuthorization)
    assert bearer.token.get_secret_value() == TOKEN
    basic = read_back[streams[1].id].destination.configuration.webhook_authorization  # type: ignore[union-attr]
    assert isinstance(basic, BasicAuthorization)
    assert basic.password.get_secret_value() == PASSWORD
    assert read_back[streams[2].id].signing_secrets[0].get_secret_value() == signing


def test_key_rotation(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams written under key A are re-encrypted by `tidings secrets rotate` under key B
    (with A as a previous key); afterwards key B alone reads every secret, and key A alone
    cannot."""
    old_key, new_key = generate_key(), generate_key()
    old = settings.model_copy(update={"secrets_key": SecretStr(old_key)})
    for stream in streams_with_every_secret():
        RegistryWriter(old).put(stream)

    monkeypatch.setenv("TIDINGS_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("TIDINGS_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("TIDINGS_SECRETS_KEY", new_key)
    monkeypatch.setenv("TIDINGS_SECRETS_PREVIOUS_KEYS", old_key)
    assert main(["secrets", "rotate"]) == 0

    only_new = settings.model_copy(update={"secrets_key": SecretStr(new_key)})
    streams = snapshot(only_new)
    assert len(streams) == 3
    tokens = [
        s.destination.configuration.webhook_authorization
        for s in streams.values()  # type: ignore[union-attr]
    ]
    assert any(
        isinstance(t, BearerAuthorization) and t.token.get_secret_value() == TOKEN for t in tokens
    )
    only_old = settings.model_copy(update={"secrets_key": SecretStr(old_key)})
    assert snapshot(only_old) == {}, "the old key alone no longer decrypts the latest records"
