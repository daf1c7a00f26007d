"""The dispatcher's allocator housekeeping (this machine runs glibc, as the CI one does)."""

from __future__ import annotations

import subprocess
import sys
import threading

from dispatcher.memory import MemoryKeeper


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_hands_freed_heap_back_to_the_kernel() -> None:
    keeper = MemoryKeeper()
    assert keeper.active
    # Many small blocks (below the mmap threshold, so they live in the heap), the last one
    # kept so the heap cannot simply shrink from its top: only a trim returns the pages.
    blocks = [bytearray(64 * 1024) for _ in range(1600)]
    keep = blocks[-1]
    before = _rss_kb()
    del blocks
    keeper.trim()
    assert before - _rss_kb() > 50_000  # of the ~100 MB freed, most left the process
    assert len(keep) == 64 * 1024


def test_the_trimming_thread_starts_and_stops() -> None:
    keeper = MemoryKeeper(interval=0.01)
    keeper.start()
    assert any(t.name == "tidings-trim" for t in threading.enumerate())
    keeper.stop()
    assert not any(t.name == "tidings-trim" for t in threading.enumerate())


def test_freezing_leaves_start_up_objects_out_of_full_collections() -> None:
    """In a fresh interpreter with the dispatcher imported, a full collection examines tens
    of thousands of objects; after freeze_startup_objects() it examines only what was made
    since (gc.get_objects() lists the objects a collection would walk)."""
    script = (
        "import gc, dispatcher.service\n"
        "from dispatcher.memory import freeze_startup_objects\n"
        "before = len(gc.get_objects())\n"
        "frozen = freeze_startup_objects()\n"
        "garbage = [[i] for i in range(100)]\n"
        "print(before, frozen, len(gc.get_objects()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    before, frozen, after = map(int, out.split())
    assert before > 20_000
    assert frozen >= before * 0.9
    assert after < 2_000
