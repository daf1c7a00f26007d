"""Decode and render each lifecycle record once, however many streams deliver it.

Every stream's consumer reads the same records; decoding and rendering the CloudEvents JSON
is the dominant per-delivery cost, so it is done straight from the Avro record
(:mod:`schemas.fast_render`, no pydantic model in between), the result is cached by the
record's bytes (and purpose), and each stream only prepends its own ``a0stream``. JSON object
keys are unordered, so the body is the same event as
:func:`schemas.cloudevents.render_cloudevent_json` renders for the stream.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from schemas.codec import AvroCodec
from schemas.errors import ContractError
from schemas.fast_render import render_record_json, with_stream


@dataclass(frozen=True, slots=True)
class Rendered:
    """An event rendered without its stream: the JSON object and the event's time."""

    body: bytes
    time: datetime
    #: The event's own id and type, from its body (the record's headers may lack or
    #: contradict them).
    event_id: str
    event_type: str

    def for_stream(self, stream_id: str) -> bytes:
        """The delivery body for one stream (``a0stream`` inserted first)."""
        return with_stream(self.body, stream_id)


class RenderCache:
    """A bounded cache of rendered events (and of decode failures, so a poison record is
    decoded once, not once per stream). The oldest entry goes first: every stream reads the
    topic in the same order, so the entries still wanted are the recent ones."""

    def __init__(self, codec: AvroCodec, size: int = 8192) -> None:
        self._codec = codec
        self._size = size
        # OrderedDict: evicting the oldest is O(1) (a dict's next(iter()) scans the slots its
        # deletions left at the front, ~2 µs per delivery at this size).
        self._entries: OrderedDict[tuple[bytes, str | None], Rendered | ContractError] = (
            OrderedDict()
        )

    def render(self, value: bytes, purpose: str | None) -> Rendered:
        """The rendered event for these record bytes; raises the record's ContractError."""
        key = (value, purpose)
        entry = self._entries.get(key)
        if entry is None:
            try:
                record = self._codec.decode_record(value)
                entry = Rendered(
                    render_record_json(record, purpose=purpose),
                    record["time"],
                    str(record["id"]),
                    str(record["type"]),
                )
            except ContractError as exc:
                entry = exc
            self._entries[key] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        if isinstance(entry, ContractError):
            raise entry
        return entry
