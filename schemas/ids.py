"""Prefixed random ids: ``evt_`` for events and ``est_`` for streams, like Auth0's.

The random part is 22 base62 characters drawn from :mod:`secrets` (about 131 bits), enough that
ids never collide and cannot be guessed.
"""

from __future__ import annotations

import hashlib
import secrets
import string

from schemas.constants import EVENT_ID_PREFIX, ID_RANDOM_LENGTH, STREAM_ID_PREFIX

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_SET = frozenset(_BASE62)


#: How many distinct random parts there are; one uniform draw below this makes an id.
_SPACE = len(_BASE62) ** ID_RANDOM_LENGTH


def _written(prefix: str, number: int) -> str:
    # ``number`` (below _SPACE) in base62 with leading zeros.
    digits = []
    for _ in range(ID_RANDOM_LENGTH):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return prefix + "".join(digits)


def _new_id(prefix: str) -> str:
    # One draw from the OS's CSPRNG: a quarter of the CPU of drawing each character
    # separately (the producer makes one id per event).
    return _written(prefix, secrets.randbelow(_SPACE))


def _has_shape(value: object, prefix: str) -> bool:
    if not isinstance(value, str) or not value.startswith(prefix):
        return False
    tail = value[len(prefix) :]
    return len(tail) == ID_RANDOM_LENGTH and _BASE62_SET.issuperset(tail)


def new_event_id() -> str:
    """Return a fresh event id, ``evt_`` followed by 22 base62 characters."""
    return _new_id(EVENT_ID_PREFIX)


def new_stream_id() -> str:
    """Return a fresh stream id, ``est_`` followed by 22 base62 characters."""
    return _new_id(STREAM_ID_PREFIX)


def is_event_id(value: object) -> bool:
    """Tell whether ``value`` is a well-formed event id."""
    return _has_shape(value, EVENT_ID_PREFIX)


def is_stream_id(value: object) -> bool:
    """Tell whether ``value`` is a well-formed stream id."""
    return _has_shape(value, STREAM_ID_PREFIX)


def _derived(prefix: str, seed: bytes) -> str:
    # A BLAKE2b digest written like a random id.
    digest = hashlib.blake2b(seed, digest_size=17).digest()
    return _written(prefix, int.from_bytes(digest) % _SPACE)


def derived_event_id(seed: bytes) -> str:
    """An event id that is a function of ``seed``: sources that may repeat an event after a
    crash, such as change capture keyed by a commit's WAL position, give the repeat the same
    id, so receivers dedupe it."""
    return _derived(EVENT_ID_PREFIX, seed)


def derived_stream_id(seed: bytes) -> str:
    """A stream id that is a function of ``seed``: the same on every replica and restart."""
    return _derived(STREAM_ID_PREFIX, seed)
