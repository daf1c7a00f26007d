"""Tests for dispatcher.signing: Standard Webhooks secrets, signatures and headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from dispatcher.signing import (
    generate_secret,
    sign,
    signature_headers,
    validate_secret,
)

KEY_A = bytes(range(32))
KEY_B = b"\xff" * 24
SECRET_A = "whsec_" + base64.b64encode(KEY_A).decode()
SECRET_B = "whsec_" + base64.b64encode(KEY_B).decode()
MSG_ID = "evt_2ZBxw9GmBWk1RAbYy6ErQU"
BODY = b'{"type":"user.created","data":{"user_id":"auth0|1"}}'


def expected_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The v1 signature computed by hand from the specification's formula."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_sign_matches_hand_computed_hmac() -> None:
    """One secret gives one v1 signature: HMAC-SHA256 of 'id.timestamp.body', base64."""
    assert sign([SECRET_A], MSG_ID, 1_700_000_000, BODY) == expected_signature(
        KEY_A, MSG_ID, 1_700_000_000, BODY
    )


def test_sign_with_two_secrets_gives_two_signatures_in_order() -> None:
    """Each secret contributes a signature, space-separated, in the order given."""
    signature = sign([SECRET_A, SECRET_B], MSG_ID, 1_700_000_000, BODY)
    assert signature.split(" ") == [
        expected_signature(KEY_A, MSG_ID, 1_700_000_000, BODY),
        expected_signature(KEY_B, MSG_ID, 1_700_000_000, BODY),
    ]


def test_sign_published_example() -> None:
    """The example from the Standard Webhooks / Svix documentation signs as published."""
    signature = sign(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "body"),
    [
        ("evt_other", 1_700_000_000, BODY),
        (MSG_ID, 1_700_000_001, BODY),
        (MSG_ID, 1_700_000_000, BODY + b" "),
    ],
)
def test_signature_covers_id_timestamp_and_body(msg_id: str, timestamp: int, body: bytes) -> None:
    """Changing the id, the timestamp or one byte of the body changes the signature."""
    assert sign([SECRET_A], msg_id, timestamp, body) != sign(
        [SECRET_A], MSG_ID, 1_700_000_000, BODY
    )


def test_sign_without_secrets_raises() -> None:
    """Signing needs at least one secret."""
    with pytest.raises(ValueError, match="at least one secret"):
        sign([], MSG_ID, 1, BODY)


def test_signature_headers() -> None:
    """Headers carry the id, the given timestamp and the signature over them."""
    headers = signature_headers([SECRET_A], MSG_ID, BODY, now=1_700_000_000)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1700000000",
        "webhook-signature": expected_signature(KEY_A, MSG_ID, 1_700_000_000, BODY),
    }


def test_signature_headers_without_secrets() -> None:
    """A stream without secrets still gets webhook-id and webhook-timestamp, unsigned."""
    headers = signature_headers([], MSG_ID, BODY, now=42)
    assert headers == {"webhook-id": MSG_ID, "webhook-timestamp": "42"}


def test_signature_headers_default_to_the_clock() -> None:
    """Without now, the timestamp is the current unix time in whole seconds."""
    before = int(time.time())
    headers = signature_headers([SECRET_A], MSG_ID, BODY)
    after = int(time.time())
    timestamp = int(headers["webhook-timestamp"])
    assert before <= timestamp <= after
    assert headers["webhook-signature"] == expected_signature(KEY_A, MSG_ID, timestamp, BODY)


def test_generate_secret() -> None:
    """A generated secret is whsec_ + base64 of 32 random bytes, valid, and never repeats."""
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert validate_secret(first) == first
    assert first != second


@pytest.mark.parametrize(
    "secret",
    [
        SECRET_A,
        SECRET_B,
        "whsec_" + base64.b64encode(b"x" * 64).decode(),
        "whsec_" + base64.b64encode(b"x" * 25).decode().rstrip("="),  # unpadded
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_validate_secret_accepts(secret: str) -> None:
    """whsec_ + base64 of 24..64 bytes is valid and returned unchanged."""
    assert validate_secret(secret) == secret


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "must start with 'whsec_'"),
        (base64.b64encode(KEY_A).decode(), "must start with 'whsec_'"),
        ("WHSEC_" + base64.b64encode(KEY_A).decode(), "must start with 'whsec_'"),
        ("whsec_", "decode to 24 to 64 bytes, not 0"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "not 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "not 65"),
        ("whsec_not*base64!" + "A" * 32, "standard base64"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "standard base64"),
        ("whsec_" + "A" * 33, "standard base64"),
    ],
)
def test_validate_secret_rejects(secret: str, message: str) -> None:
    """Malformed secrets raise ValueError, and the message never contains the secret."""
    with pytest.raises(ValueError, match="webhook secret") as caught:
        validate_secret(secret)
    assert message in str(caught.value)
    if len(secret) > len("whsec_"):
        assert secret not in str(caught.value)


def test_sign_rejects_a_malformed_secret() -> None:
    """Signing with a malformed secret raises instead of signing with a wrong key."""
    with pytest.raises(ValueError, match="must start with 'whsec_'"):
        sign([SECRET_A, "secret"], MSG_ID, 1, BODY)


class TestReferenceVerifier:
    """Signatures verify with the `standardwebhooks` reference library, when installed."""

    @pytest.fixture
    def webhook_cls(self) -> type:
        """The reference library's Webhook class (skips the test when it is missing)."""
        return pytest.importorskip("standardwebhooks").Webhook  # type: ignore[no-any-return]

    def test_reference_verifies_one_secret(self, webhook_cls: type) -> None:
        """The reference verifier accepts our headers for a single secret."""
        headers = signature_headers([SECRET_A], MSG_ID, BODY)
        assert webhook_cls(SECRET_A).verify(BODY, headers)["type"] == "user.created"

    @pytest.mark.parametrize("verifying_secret", [SECRET_A, SECRET_B])
    def test_reference_verifies_during_rotation(
        self, webhook_cls: type, verifying_secret: str
    ) -> None:
        """Signed with old and new secret, a receiver holding either one verifies."""
        secret = generate_secret()
        headers = signature_headers([SECRET_A, SECRET_B, secret], MSG_ID, BODY)
        assert webhook_cls(verifying_secret).verify(BODY, headers)["data"]["user_id"] == "auth0|1"
        assert webhook_cls(secret).verify(BODY, headers) is not None

    def test_reference_rejects_another_secret(self, webhook_cls: type) -> None:
        """A receiver holding a secret we did not sign with rejects the request."""
        verification_error = pytest.importorskip("standardwebhooks").WebhookVerificationError
        headers = signature_headers([SECRET_A], MSG_ID, BODY)
        with pytest.raises(verification_error):
            webhook_cls(generate_secret()).verify(BODY, headers)

    def test_reference_rejects_a_tampered_body(self, webhook_cls: type) -> None:
        """Changing the body after signing fails verification."""
        verification_error = pytest.importorskip("standardwebhooks").WebhookVerificationError
        headers = signature_headers([SECRET_A], MSG_ID, BODY)
        with pytest.raises(verification_error):
            webhook_cls(SECRET_A).verify(BODY.replace(b"auth0|1", b"auth0|2"), headers)
