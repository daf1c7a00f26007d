"""SIGKILL at random moments: a dispatcher process killed five times during a long run against
a flaky endpoint loses no event; every one is delivered or dead-lettered after restarts."""

from __future__ import annotations

import asyncio
import bisect
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from admin.status import collect_status
from dispatch_kit import DispatcherProcess, produce_events, register, webhook_stream, with_schedule
from dispatcher.stream_worker import COMMIT_INTERVAL
from producer.config import Settings
from receiver import Received
from reliability.accounting import settle
from reliability.restartable_receiver import RestartableReceiver

EVENTS = 20_000
KILLS = 5
MAX_IN_FLIGHT = 128


def kill_thresholds(rng: random.Random, kills: int, low: int, high: int) -> list[int]:
    """One random request count in each of ``kills`` equal slices of ``[low, high)``: random
    moments, yet spread over the run so each restarted process gets work done."""
    step = (high - low) // kills
    return [rng.randrange(low + i * step, low + (i + 1) * step) for i in range(kills)]


def flaky(rng: random.Random) -> int | str:
    """One answer of an endpoint that times out 5% and answers 503 to 20% of requests,
    drawn per request (not per event), so a retry of the same event can succeed."""
    draw = rng.random()
    if draw < 0.05:
        return "hang"
    return 503 if draw < 0.25 else 200


def stop(dispatcher: DispatcherProcess) -> None:
    """Stop the process with SIGTERM, or SIGKILL when it does not exit in time."""
    try:
        dispatcher.terminate(timeout=40)
    except subprocess.TimeoutExpired:
        dispatcher.kill()


def errors_in(log: Path) -> str:
    """The lines of a dispatcher log that tell of errors and tracebacks."""
    markers = ("Traceback", "never retrieved", '"level": "error"', '"level": "warning"')
    lines = log.read_text(errors="replace").splitlines()
    wanted = [line for line in lines if any(m in line for m in markers)]
    return "\n".join(line for line in wanted if '"dead_lettered"' not in line)[-5000:]


async def test_kill_9_five_times_during_a_flaky_run_loses_nothing(
    settings: Settings, receiver: RestartableReceiver, tmp_path: Path
) -> None:
    """Five SIGKILLs at random request counts during 20,000 events (20% answered 503, 5%
    hanging past the 1 s timeout), each followed by a restart: every event reaches the
    receiver at least once or lies in the dead-letter topic, and each kill repeats at most
    what was in flight (the stream's max_in_flight) plus what was answered in the last
    commit interval before it: finished offsets above a slow one are not repeated."""
    seed = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nseed={seed} (RELIABILITY_SEED={seed} repeats the kill moments and answers)")
    rng = random.Random(seed)
    settings = with_schedule(settings, ["1s", "2s", "4s"])
    thresholds = kill_thresholds(rng, KILLS, low=1_000, high=19_000)
    receiver.script = lambda _request, _seen: flaky(rng)
    (stream,) = register(
        settings,
        webhook_stream(receiver.url(), delivery={"timeout": "1s", "max_in_flight": MAX_IN_FLIGHT}),
    )
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    dispatcher.start()
    t0 = time.monotonic()
    try:
        producing = asyncio.create_task(asyncio.to_thread(produce_events, settings, EVENTS))
        kills: list[float] = []
        for threshold in thresholds:
            try:
                await receiver.wait_until(lambda t=threshold: len(receiver.requests) >= t, 90)
            except AssertionError:
                log = tmp_path / "dispatcher.log"
                print(errors_in(log) or log.read_text(errors="replace")[-5000:])
                raise
            dispatcher.kill()
            kills.append(time.monotonic())
            print(f"killed at {len(receiver.requests)} requests, t={time.monotonic() - t0:.1f}s")
            dispatcher.start()
        ids = await producing
        print(f"produced t={time.monotonic() - t0:.1f}s")
        account = await settle(receiver, settings, stream.id, ids, timeout=150)
        status = await asyncio.to_thread(collect_status, settings, 10.0)
    finally:
        # SIGTERM, not SIGKILL: a consumer task that died with an exception is reported
        # when the process shuts down, and the log below then shows it.
        await asyncio.to_thread(stop, dispatcher)
    print(f"settled t={time.monotonic() - t0:.1f}s")
    print(f"lag={[s.lag for s in status.streams]} backlog={[t.backlog for t in status.tiers]}")
    if account.lost:
        print(errors_in(tmp_path / "dispatcher.log"))
    print(f"kill -9 x{KILLS}: {account.line()}")
    account.assert_nothing_lost()
    assert len(ids) == EVENTS
    repeats = repeats_of(receiver.requests, kills)
    print("\n".join(repeats.lines()))
    # The target: a kill repeats at most what was in flight and what finished in the last
    # commit interval before it (summed over the kills: a repeat is attributed to the kill
    # that lost its commit, and a kill's in-flight deliveries need not all have answered).
    bound = KILLS * MAX_IN_FLIGHT + sum(repeats.last_interval)
    print(f"repeated by kills: {sum(repeats.per_kill)}, bound {bound}")
    assert sum(repeats.per_kill) <= bound


@dataclass(frozen=True)
class Repeats:
    """Which kills made the restarted dispatchers repeat deliveries, and how many each."""

    #: Per kill: repeated 2xx answers of events answered 2xx before it (and not since an
    #: earlier kill), i.e. finished deliveries whose commit that kill lost.
    per_kill: list[int]
    #: Per kill: 2xx answers in the commit interval just before it.
    last_interval: list[int]
    #: Repeated 2xx answers with no kill between them and the answer before (a receiver
    #: that answered after the dispatcher's timeout, under the load of this run).
    other: int

    def lines(self) -> list[str]:
        """One line per kill, then the rest."""
        return [
            f"kill {i + 1}: repeated {n} (answered in its last commit interval: {last})"
            for i, (n, last) in enumerate(zip(self.per_kill, self.last_interval, strict=True))
        ] + [f"repeats not caused by a kill: {self.other}"]


def repeats_of(requests: list[Received], kills: list[float]) -> Repeats:
    """Attribute each repeated 2xx answer to the first kill after the event's previous 2xx
    answer: the kill that lost its commit (a quick later kill only postpones the repeat)."""
    per_kill = [0] * len(kills)
    other = 0
    previous: dict[str, float] = {}
    for answer in sorted((r for r in requests if 200 <= r.status < 300), key=lambda r: r.at):
        before = previous.get(answer.event_id)
        previous[answer.event_id] = answer.at
        if before is None:
            continue
        first_kill = bisect.bisect_left(kills, before)
        if first_kill < len(kills) and kills[first_kill] < answer.at:
            per_kill[first_kill] += 1
        else:
            other += 1
    last_interval = [
        sum(1 for r in requests if 200 <= r.status < 300 and kill - COMMIT_INTERVAL < r.at <= kill)
        for kill in kills
    ]
    return Repeats(per_kill, last_interval, other)
