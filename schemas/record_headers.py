"""The one tolerant reader of Kafka record headers, for every component that reads Tidings'
topics (dispatcher, dead-letter tools, admin service).

Anything can write to a topic: an older or newer Tidings, a script, a tool, a broken client.
So every header is hostile until parsed: a value may be missing, empty, not UTF-8, cut in the
middle of a character, not a number, or a number no clock can hold. Each accessor here
returns a parsed value or None (or the caller's default) and never raises; what is invalid is
treated as absent. Callers decide what an absent value means for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

#: Timestamps outside these bounds (ms since the epoch) are treated as absent: a header of
#: ``99999999999999999`` or ``-5`` is not a time anything should wait for or sort by.
MIN_MS = 0
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the end of what datetime can hold

#: Header values longer than this are not parsed as numbers (a number has ~20 digits).
_MAX_NUMBER_LENGTH = 32


def header_map(raw: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> dict[str, bytes]:
    """A record's headers as a dict (the last value of a repeated name wins); ``None`` values
    become empty and ``str`` values are encoded."""
    headers: dict[str, bytes] = {}
    pairs = raw.items() if isinstance(raw, Mapping) else (raw or ())
    for key, value in pairs:
        if isinstance(value, str):
            value = value.encode()
        headers[str(key)] = value if isinstance(value, bytes) else b""
    return headers


class RecordHeaders:
    """Typed, never-raising access to one record's headers."""

    __slots__ = ("raw",)

    def __init__(self, raw: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> None:
        self.raw = header_map(raw)

    @classmethod
    def of(cls, message: Any) -> RecordHeaders:
        """The headers of a confluent-kafka ``Message``."""
        return cls(message.headers())

    def __contains__(self, name: str) -> bool:
        return name in self.raw

    def text(self, name: str, default: str = "") -> str:
        """The value as text (undecodable bytes replaced), or ``default`` when absent or empty."""
        value = self.raw.get(name)
        if not value:
            return default
        return value.decode("utf-8", errors="replace")

    def optional_text(self, name: str) -> str | None:
        """The value as text, or None when absent or empty."""
        return self.text(name) or None

    def integer(self, name: str) -> int | None:
        """The value as a decimal integer, or None when absent or not one."""
        value = self.raw.get(name)
        if not value or len(value) > _MAX_NUMBER_LENGTH:
            return None
        try:
            return int(value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None

    def time_ms(self, name: str) -> datetime | None:
        """The value as milliseconds since the epoch, or None when absent, not a number, or
        outside year 1970 to 9999."""
        ms = self.integer(name)
        if ms is None or not MIN_MS <= ms <= MAX_MS:
            return None
        return datetime.fromtimestamp(ms / 1000, UTC)


def ms(value: datetime) -> bytes:
    """A time as a header value (milliseconds since the epoch)."""
    return str(int(value.timestamp() * 1000)).encode()
