"""Compare-and-set on the registry topic: a conditional write applies only if the stream's
state is still the one it was based on.

Kafka has no conditional produce, but every reader of a compacted topic sees one partition's
records in the same order, so the condition can be judged on read, identically by every
reader. A conditional record carries the offset of the record it was based on
(``tidings-if-offset``); a reader applies it only if that record still holds the stream's
current state. Otherwise another write landed in between: every reader ignores the
conditional record, and its writer, reading the topic back, sees its write did not apply,
re-reads and retries. ``tidings secrets rotate`` writes this way, so it can never undo a
change made meanwhile through the API; other writes are unconditional (last writer wins).

Compaction keeps a stream's latest record only. A conditional record that lost and was then
left the latest (its writer died before retrying) is applied after compaction removed what
it lost to: readers cannot tell it from a winner once the base is gone. The window is the
writer's few milliseconds between reading its record back and writing again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from schemas.constants import HEADER_IF_OFFSET
from schemas.record_headers import RecordHeaders

#: Record headers as confluent-kafka returns them.
Headers = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None


class BadConditionError(ValueError):
    """A ``tidings-if-offset`` header that is not an offset."""


def if_offset_of(headers: Headers) -> int | None:
    """The offset a conditional record was based on, or ``None`` for an unconditional one.
    Raises :class:`BadConditionError` for a header that is not a non-negative integer."""
    read = RecordHeaders(headers)
    if HEADER_IF_OFFSET not in read:
        return None
    offset = read.integer(HEADER_IF_OFFSET)
    if offset is None or offset < 0:
        raise BadConditionError("tidings-if-offset is not an offset")
    return offset


@dataclass
class RegistryOrder:
    """Which record holds each stream's current state, to judge conditional records."""

    #: Offset of the record holding each stream's current state.
    offsets: dict[str, int] = field(default_factory=dict)
    #: Ids whose latest applied record is a tombstone: deleted, not merely not yet seen.
    deleted: set[str] = field(default_factory=set)

    def admit(self, key: str, offset: int, tombstone: bool, if_offset: int | None) -> bool:
        """Whether a record applies (and note it as the current one if so)."""
        if if_offset is not None:
            if key in self.deleted:
                return False  # never bring back a stream deleted meanwhile
            current = self.offsets.get(key)
            if current is not None and current != if_offset:
                return False
        if tombstone:
            self.deleted.add(key)
            self.offsets.pop(key, None)
        else:
            self.deleted.discard(key)
            self.offsets[key] = offset
        return True
