"""Keeping the dispatcher's resident memory close to what it actually uses (glibc only).

A dispatcher runs one librdkafka consumer per stream, five threads each: five hundred threads
at a hundred streams. glibc gives threads up to eight malloc arenas per core, and memory freed
in an arena after a burst (the first fetches of a hundred consumers, a backlog) stays resident
there: measured at 100 streams, 80 to 100 MB of a 275 MB peak was such free memory. Four arenas
and handing free pages back to the kernel every few seconds keep it small (two arenas cost
measurably more CPU in lock waits). The trim runs on its own thread and releases the GIL, but
it holds each arena's lock for a few milliseconds while it walks it, so it runs only every
:data:`TRIM_INTERVAL` seconds: rare enough to stay out of the delivery latency's p99.
Elsewhere (musl, macOS) this is a no-op.

:func:`freeze_startup_objects` is about the garbage collector, not the allocator: the ~75,000
objects of the imported modules (pydantic schemas, fastavro, aiohttp, ...) would otherwise be
walked by every full collection, which stalled the event loop for 40-50 ms each (measured
with ``gc.callbacks`` during bench/e2e.py: a few times a minute at full load), a direct hit on
delivery latency. Frozen, they are left out, and a full collection took 2-5 ms.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading

#: mallopt(3) parameter: the most arenas glibc creates.
_M_ARENA_MAX = -8
ARENAS = 4
TRIM_INTERVAL = 5.0


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 -- present in glibc only
        libc.malloc_trim  # noqa: B018
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class MemoryKeeper:
    """Caps glibc's arenas (call before the Kafka clients start their threads) and trims
    free memory periodically until :meth:`stop`."""

    def __init__(self, interval: float = TRIM_INTERVAL, arenas: int = ARENAS) -> None:
        self._libc = _glibc()
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._libc is not None:
            self._libc.mallopt(_M_ARENA_MAX, arenas)

    @property
    def active(self) -> bool:
        """Whether this platform's allocator is the one tuned here."""
        return self._libc is not None

    def start(self) -> None:
        """Start the trimming thread (a no-op off glibc)."""
        if self._libc is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tidings-trim", daemon=True)
        self._thread.start()

    def trim(self) -> None:
        """Hand free heap pages back to the kernel now."""
        if self._libc is not None:
            self._libc.malloc_trim(0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.trim()

    def stop(self) -> None:
        """Stop the trimming thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def freeze_startup_objects() -> int:
    """Collect what start-up left as garbage, then move every surviving object to the
    collector's permanent generation (never scanned again). Call once, after the imports and
    before the event loop starts. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
