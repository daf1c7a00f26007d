"""Hostile receivers: whatever a webhook endpoint answers (absurd ``Retry-After`` values, a
redirect loop, a body that never ends, huge headers, gigabytes of body, a reset connection),
every event ends (delivered, or through the retry tiers into the dead-letter topic with its
reason and its history), a healthy stream beside them is unaffected, and every stream's
committed offset reaches the end of the topic (nothing pinned). Real broker, real dispatcher
process, the hostile receiver of ``hostile_receiver.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dispatch_kit import DispatcherProcess, produce_events, register, webhook_stream
from producer.config import Settings
from reliability import hostile_receiver as hostile
from reliability.hostile_kit import (
    StreamAccount,
    attempts_by_stream,
    dead_letters_by_stream,
    stream_group,
    tier_groups,
    wait_committed,
)
from reliability.test_dispatcher_kill import errors_in

EVENTS = 8
#: path → (behaviour, how each event must end: "delivered" or the start of its DLQ reason)
CASES: dict[str, tuple[hostile.Behaviour, str]] = {
    "retry-after-huge": (hostile.retry_after("100000000000000"), "retries exhausted"),
    "retry-after-negative": (hostile.retry_after("-5"), "retries exhausted"),
    "retry-after-zero": (hostile.retry_after("0"), "retries exhausted"),
    "retry-after-fraction": (hostile.retry_after("0.25", code=429), "retries exhausted"),
    "retry-after-far-future": (
        hostile.retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
        "retries exhausted",
    ),
    "retry-after-far-past": (
        hostile.retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
        "retries exhausted",
    ),
    "retry-after-garbage": (hostile.retry_after("soon, I promise \x7f"), "retries exhausted"),
    "redirect-loop": (hostile.redirect_to_self, "permanent failure: redirect not followed"),
    "endless-slow-body": (hostile.endless_slow_body, "retries exhausted"),
    "huge-headers": (hostile.huge_headers, "retries exhausted"),
    "gigabytes-of-body": (hostile.gigabytes_of_body, "retries exhausted"),
    "reset-mid-request": (hostile.reset_mid_request, "retries exhausted"),
    "healthy": (hostile.ok, "delivered"),
}


async def test_every_event_ends_whatever_the_receiver_answers(
    settings: Settings, tmp_path: Path
) -> None:
    """Thirteen streams, one per behaviour, each sent the same events: every event of a
    hostile stream ends in the DLQ with the expected reason after its attempts are logged,
    the healthy stream gets every event, and no group is left behind the topic's end."""
    receiver = await hostile.HostileReceiver({p: b for p, (b, _e) in CASES.items()}).start()
    streams = {
        path: stream
        for path, stream in zip(
            CASES,
            register(
                settings,
                *(
                    webhook_stream(receiver.url(path), name=path, delivery={"timeout": "1s"})
                    for path in CASES
                ),
            ),
            strict=True,
        )
    }
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    dispatcher.start()
    try:
        ids = set(await asyncio.to_thread(produce_events, settings, EVENTS))
        hostile_count = (len(CASES) - 1) * EVENTS
        dead = await _until_dead_lettered(settings, hostile_count, timeout=90, log=dispatcher)
        attempts = await asyncio.to_thread(attempts_by_stream, settings)
        behind = {
            path: await asyncio.to_thread(
                wait_committed, settings, stream_group(settings, s.id), settings.lifecycle_topic
            )
            for path, s in streams.items()
        }
        tiers_behind = {
            topic: await asyncio.to_thread(wait_committed, settings, group, topic)
            for topic, group in tier_groups(settings).items()
        }
        assert dispatcher.process.poll() is None, "the dispatcher exited"
    finally:
        dispatcher.terminate()
        await receiver.stop()

    failures = []
    kept_bodies: set[str | None] = set()
    for path, (_behaviour, expected) in CASES.items():
        stream = streams[path]
        delivered = {e for (p, e) in receiver.delivered if p == path} & ids
        letters = {e: r for e, r in dead.get(stream.id, {}).items() if e in ids}
        account = StreamAccount(path, EVENTS, len(delivered), 0, len(letters), behind[path])
        print(account.line())
        if account.lost or account.pinned:
            failures.append(account.line())
        if expected == "delivered":
            assert delivered == ids, path
        else:
            wrong = {e: r for e, r in letters.items() if not r.startswith(expected)}
            assert not wrong, f"{path}: unexpected reasons {wrong}"
            logged = attempts.get(stream.id, {})
            unlogged = [e for e in ids if not logged.get(e) or logged[e][-1].status != "failed"]
            assert not unlogged, f"{path}: events without their failed attempt in the history"
            if path.startswith("retry-after"):  # the receiver's answer is kept for failures
                # (a header HTTP forbids, as in the garbage case, makes the answer unreadable)
                bodies = {a.response_body for e in ids for a in logged[e] if a.http_status}
                assert bodies <= {"later"}, f"{path}: {bodies}"
                kept_bodies |= bodies
    assert kept_bodies == {"later"}, "failed attempts keep the receiver's answer"
    print(f"tiers behind their commits: {tiers_behind}")
    assert not failures, failures
    assert not any(tiers_behind.values())


async def _until_dead_lettered(
    settings: Settings, count: int, timeout: float, log: DispatcherProcess
) -> dict[str, dict[str, str]]:
    """Wait until the DLQ holds ``count`` dead letters in all; the dispatcher log's errors
    explain a timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        dead = await asyncio.to_thread(dead_letters_by_stream, settings)
        if sum(len(v) for v in dead.values()) >= count:
            return dead
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{sum(len(v) for v in dead.values())} of {count} dead letters; "
                f"dispatcher log: {errors_in(log.log_path)}"
            )
        await asyncio.sleep(0.5)
