"""The streams as the admin API sees them: the registry topic's records, plus this
process's own writes applied at once (read-your-writes).

A write is acknowledged by Kafka before the view's consumer necessarily reads it back. So
after a write the table shows the written state at once and ignores older registry records
for that id until its own record comes back; from then on the topic is followed again
(so a later write by the dispatcher, an auto-disable say, is seen). Pure: the Kafka side is
:mod:`admin.api.view`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError

from dispatcher.registry_order import BadConditionError, Headers, RegistryOrder, if_offset_of
from dispatcher.secret_box import SecretBox
from dispatcher.streams import Stream

log = structlog.get_logger(__name__)


@dataclass
class _Write:
    """A write in progress: the records seen for its id since it began."""

    writers: int = 0
    seen: list[bytes | None] = field(default_factory=list)


class StreamTable:
    """Current streams by id."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._order = RegistryOrder()
        self.streams: dict[str, Stream] = {}
        self._writing: dict[str, _Write] = {}
        #: Our record not yet read back, by id (None: a tombstone).
        self._pending: dict[str, bytes | None] = {}

    def observe(
        self, key: str, value: bytes | None, *, offset: int | None = None, headers: Headers = None
    ) -> None:
        """Apply one registry record, as read from the topic (a conditional record only if
        the record it was based on still holds the stream: :mod:`dispatcher.registry_order`)."""
        try:
            if_offset = if_offset_of(headers)
        except BadConditionError as exc:
            log.error("registry_record_invalid", stream_id=key, error=str(exc))
            return
        if offset is not None and not self._order.admit(key, offset, value is None, if_offset):
            return
        write = self._writing.get(key)
        if write is not None:
            write.seen.append(value)
        if key in self._pending:
            if self._pending[key] != value:
                return  # older than our own write, which is not back yet
            del self._pending[key]
        self._apply(key, value)

    def _apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.streams.pop(key, None)
            return
        try:
            self.streams[key] = Stream.from_registry(value, self._box)
        except ValidationError as exc:
            # An unreadable latest state must not leave an older one showing.
            self.streams.pop(key, None)
            log.error("registry_record_invalid", stream_id=key, error_count=exc.error_count())

    def begin_write(self, key: str) -> None:
        """A write of ``key`` is about to be sent."""
        self._writing.setdefault(key, _Write()).writers += 1

    def end_write(self, key: str, value: bytes | None) -> None:
        """The write of ``value`` to ``key`` was acknowledged: show it now."""
        seen = self._finish(key)
        if value in seen:
            return  # already read back, and anything after it too
        self._pending[key] = value
        self._apply(key, value)

    def abort_write(self, key: str) -> None:
        """The write failed: nothing changes."""
        self._finish(key)

    def _finish(self, key: str) -> list[bytes | None]:
        """End one write of ``key``; the records seen since it began."""
        write = self._writing.get(key)
        if write is None:
            return []
        write.writers -= 1
        if write.writers <= 0:
            del self._writing[key]
        return list(write.seen)

    def __len__(self) -> int:
        return len(self.streams)
