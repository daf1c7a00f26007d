"""Standard Webhooks signatures for outgoing webhook requests.

Each request carries ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per active secret, space-separated, over
``"{id}.{timestamp}.{body}"``. Signing with the old and the new secret at once is how a
stream rotates its secret without a window in which receivers reject requests. Secrets are
``whsec_`` followed by the base64 of 24 to 64 random bytes; the HMAC key is those bytes.

Error messages here never include a secret, so they are safe to log and to return in an API
error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from secrets import token_bytes
from typing import Final

#: Prefix of every webhook signing secret.
SECRET_PREFIX: Final = "whsec_"
#: Length in bytes of the secrets ``generate_secret`` makes.
SECRET_BYTES: Final = 32
#: Decoded secret lengths the Standard Webhooks specification allows.
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
#: The signature scheme version written before each signature.
SIGNATURE_VERSION: Final = "v1"

#: Request headers defined by the Standard Webhooks specification.
HEADER_WEBHOOK_ID: Final = "webhook-id"
HEADER_WEBHOOK_TIMESTAMP: Final = "webhook-timestamp"
HEADER_WEBHOOK_SIGNATURE: Final = "webhook-signature"


def generate_secret() -> str:
    """Return a new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    """Decode a secret to its HMAC key, raising ``ValueError`` if it is malformed.

    Missing base64 padding is tolerated, since some systems strip it from their secrets.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError(
            f"webhook secret must be {SECRET_PREFIX!r} followed by standard base64"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"webhook secret must decode to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"not {len(key)}"
        )
    return key


def validate_secret(s: str) -> str:
    """Return ``s`` unchanged if it is a valid signing secret, else raise ``ValueError``."""
    _secret_key(s)
    return s


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value: ``v1,<base64>`` per secret, space-separated.

    Raises ``ValueError`` if ``secrets`` is empty or any secret is malformed.
    """
    if not secrets:
        raise ValueError("signing needs at least one secret")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signatures = []
    for secret in secrets:
        digest = hmac.digest(_secret_key(secret), signed, hashlib.sha256)
        signatures.append(f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}")
    return " ".join(signatures)


def signature_headers(
    secrets: Sequence[str], msg_id: str, body: bytes, now: int | None = None
) -> dict[str, str]:
    """Return the Standard Webhooks headers for one request.

    ``now`` is the unix timestamp to sign with (default: the current time). A stream without
    secrets gets only ``webhook-id`` and ``webhook-timestamp``, which still let a receiver
    deduplicate and reject stale requests.
    """
    timestamp = int(time.time()) if now is None else now
    headers = {HEADER_WEBHOOK_ID: msg_id, HEADER_WEBHOOK_TIMESTAMP: str(timestamp)}
    if secrets:
        headers[HEADER_WEBHOOK_SIGNATURE] = sign(secrets, msg_id, timestamp, body)
    return headers
