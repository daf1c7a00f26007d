"""Webhook secrets at rest: encrypted in the registry topic with a key from configuration.

Fernet (from ``cryptography``) gives authenticated encryption and key rotation: the current
key (``TIDINGS_SECRETS_KEY``) encrypts, it and the previous keys
(``TIDINGS_SECRETS_PREVIOUS_KEYS``) decrypt. Without a configured key, a key file
(``TIDINGS_SECRETS_KEY_FILE``, default ``~/.config/tidings/secrets.key``) is created once with
mode 0600 and used by every process of this machine, so ``make run`` needs no setup;
deployments with several machines set the key explicitly.

Rotation: generate a new key (``tidings secrets generate-key``), set it as
``TIDINGS_SECRETS_KEY`` with the old one in ``TIDINGS_SECRETS_PREVIOUS_KEYS`` everywhere, run
``tidings secrets rotate`` (rewrites every stream under the new key), then drop the old key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from producer.config import Settings

#: Marks an encrypted value in the registry's JSON.
PREFIX = "enc:v1:"


class SecretBoxError(ValueError):
    """A secret could not be decrypted (wrong or missing key)."""


class SecretBox:
    """Encrypts with the current key, decrypts with any configured key."""

    def __init__(self, current: str, previous: list[str] | None = None) -> None:
        keys = [Fernet(current.encode())] + [Fernet(k.encode()) for k in previous or []]
        self._fernet = MultiFernet(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box the settings describe (creating the local key file when no key is set)."""
        previous = [k.get_secret_value() for k in settings.secrets_previous_keys]
        if settings.secrets_key is not None:
            return cls(settings.secrets_key.get_secret_value(), previous)
        return cls(_key_from_file(Path(settings.secrets_key_file).expanduser()), previous)

    def encrypt(self, plaintext: str) -> str:
        """The stored form of a secret."""
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """The secret back from its stored form."""
        if not stored.startswith(PREFIX):
            raise SecretBoxError("the value is not an encrypted secret")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SecretBoxError(
                "a stored secret cannot be decrypted with the configured keys "
                "(TIDINGS_SECRETS_KEY / TIDINGS_SECRETS_PREVIOUS_KEYS)"
            ) from None


def generate_key() -> str:
    """A new random key for ``TIDINGS_SECRETS_KEY``."""
    return Fernet.generate_key().decode()


def _key_from_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    try:  # O_EXCL: of two processes starting at once, one writes and both read its key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
