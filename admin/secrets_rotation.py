"""``tidings secrets rotate``: rewrite every stream so that its secrets are encrypted with
the current key, without ever undoing a change made meanwhile.

Each stream is rewritten with a conditional write (:mod:`dispatcher.registry_order`) based
on the record the rotation read. If a change landed in between (a PATCH through the API, an
auto-disable by the dispatcher), every reader ignores the rewrite; the rotation sees that by
reading the topic back, takes the stream's new state and tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from dispatcher.registry import RegistryView, RegistryWriter
from dispatcher.streams import Stream
from producer.config import Settings

#: Rewrites of one stream before the rotation gives up on it (each loss means another
#: write landed in between, so this many in a row means the stream is being rewritten
#: continuously; running the rotation again later finishes it).
ATTEMPTS: Final = 5
#: How long to wait for the registry to show a write back.
READ_BACK_TIMEOUT: Final = 30.0

#: Called with the state read, just before it is rewritten (tests land a change here).
BeforeWrite = Callable[[Stream], Awaitable[None]]


@dataclass
class RotationReport:
    """What a rotation did."""

    rotated: list[str] = field(default_factory=list)
    #: Rewrites that lost to a change made in between (and were retried).
    conflicts: int = 0
    #: Streams still rewritten by others after every attempt: not re-encrypted.
    gave_up: list[str] = field(default_factory=list)


async def rotate_secrets(
    settings: Settings, *, before_write: BeforeWrite | None = None
) -> RotationReport:
    """Re-encrypt every stream in the registry with the current key."""
    view = RegistryView(settings)
    following = asyncio.create_task(view.run())
    writer = RegistryWriter(settings)
    report = RotationReport()
    try:
        await view.caught_up.wait()
        for stream_id in sorted(view.streams):
            for _attempt in range(ATTEMPTS):
                stream = view.streams.get(stream_id)
                base = view.order.offsets.get(stream_id)
                if stream is None or base is None:
                    break  # deleted (or made unreadable) meanwhile: nothing to re-encrypt
                if before_write is not None:
                    await before_write(stream)
                partition, offset = await writer.aput_if(stream, base)
                async with asyncio.timeout(READ_BACK_TIMEOUT):
                    applied = await view.holds(stream_id, partition, offset)
                if applied:
                    report.rotated.append(stream_id)
                    break
                report.conflicts += 1
            else:
                report.gave_up.append(stream_id)
    finally:
        view.stop()
        await following
    return report
