"""A stream narrowed by an endpoint that hangs never stalls its consumer: it keeps polling
well inside ``max.poll.interval.ms`` (lowered to 10 s here), so it never leaves its group,
writes exactly one retry record per failed attempt, and its retries waiting for its one slot
never hold up another stream's retries in the same tier. Real broker, real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from dispatch_kit import produce_events, register, running_dispatcher, until, webhook_stream
from producer.config import Settings
from receiver import Received, Receiver
from reliability.hostile_kit import attempts_by_stream, stream_group, tier_records_by_stream

EVENTS = 150
TIMEOUT_S = 3.0
#: Longer than max.poll.interval.ms: a consumer that stopped polling would have left.
WINDOW_S = 14.0


def group_state(settings: Settings, group: str) -> tuple[ConsumerGroupState, int]:
    """The group's state and member count, from the broker."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    description = admin.describe_consumer_groups([group])[group].result(10)
    return description.state, len(description.members)


async def test_a_narrowed_stream_keeps_polling_and_lets_other_retries_pass(
    settings: Settings, receiver: Receiver
) -> None:
    """Stream A (64 in flight) hangs past its 3 s timeout and narrows to one request at a
    time, with 150 events to go; for 14 s its group stays stable with one member (a consumer
    blocked waiting for a slot would have been dropped after 10 s). Stream B fails each event
    once: its retries come through the shared 1 s tier in time while A's wait there. Every
    retried attempt of A left exactly one tier record."""
    settings = Settings.model_validate(
        {
            **settings.model_dump(exclude={"retry_schedule", "kafka"}),
            "retry_schedule": ["1s", "60s"],
            # librdkafka wants the poll interval no shorter than the session timeout.
            "kafka": {"max.poll.interval.ms": "10000", "session.timeout.ms": "10000"},
        }
    )
    from admin.topics import ensure_all

    ensure_all(settings)
    first_seen: dict[str, float] = {}
    retried_after: list[float] = []

    def script(request: Received, _seen: int) -> int | str:
        if request.path == "a":
            return "hang"
        event = request.event_id
        if event not in first_seen:
            first_seen[event] = time.monotonic()
            return 503
        retried_after.append(time.monotonic() - first_seen[event])
        return 200

    receiver.script = script
    stream_a, _stream_b = register(
        settings,
        webhook_stream(
            receiver.url("a"), name="a", delivery={"timeout": "3s", "max_in_flight": 64}
        ),
        webhook_stream(receiver.url("b"), name="b"),
    )
    group = stream_group(settings, stream_a.id)
    async with running_dispatcher(settings) as dispatcher:
        ids = produce_events(settings, EVENTS)
        await until(lambda: stream_a.id in dispatcher.runtimes, timeout=15)
        slots = dispatcher.runtimes[stream_a.id].slots
        await until(lambda: slots.width == 1, timeout=30)
        states = []
        window_end = time.monotonic() + WINDOW_S
        while time.monotonic() < window_end:
            states.append(await asyncio.to_thread(group_state, settings, group))
            await asyncio.sleep(1.0)  # sampling the group's state over the window
        await receiver.wait_until(lambda: len(retried_after) >= EVENTS, timeout=30)
    print(f"\ngroup states over {WINDOW_S:g}s: {Counter(states)}")
    print(f"stream b retried after: max {max(retried_after):.2f}s")
    assert all(state == (ConsumerGroupState.STABLE, 1) for state in states), Counter(states)
    # Due after 1 s, resumed within a grain (0.1 s), plus time under load on two cores.
    assert max(retried_after) < 1.0 + 0.1 + 3.0
    attempts = await asyncio.to_thread(attempts_by_stream, settings)
    tier_records = await asyncio.to_thread(tier_records_by_stream, settings)
    retried = Counter(
        {
            event: sum(1 for a in logged if a.status == "retrying")
            for event, logged in attempts[stream_a.id].items()
        }
    )
    assert retried, "stream a retried nothing"
    assert +retried == +tier_records[stream_a.id], "not one tier record per retried attempt"
    assert set(ids) <= {e for e in first_seen}
