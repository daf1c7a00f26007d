"""The admin API with a real dispatcher and a real receiver: the full story (create, deliver,
fail into the DLQ, recover, redeliver), test events, stats, history filters and paging."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from admin_kit import SECRETS, Api, running_system
from dispatch_kit import produce_events
from dispatcher.service import Dispatcher
from producer.config import Settings
from receiver import Receiver


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[tuple[Api, Dispatcher]]:
    """A ready admin API and a running dispatcher on the same fresh topics."""
    async with running_system(settings) as (api, dispatcher):
        yield api, dispatcher
        api.assert_no_secret_leaked()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {timeout}s; last: {result!r}")
        await asyncio.sleep(0.1)


def secret_stream(url: str) -> dict[str, Any]:
    return {
        "name": "story",
        "subscriptions": [{"event_type": "*"}],
        "destination": {
            "type": "webhook",
            "configuration": {
                "webhook_endpoint": url,
                "webhook_authorization": {"method": "bearer", "token": SECRETS["bearer"]},
            },
        },
        "signing_secrets": [SECRETS["signing"]],
    }


async def statuses(api: Api, stream_id: str, **params: str) -> dict[str, str]:
    """event id -> latest status, over every page."""
    found: dict[str, str] = {}
    cursor: str | None = None
    while True:
        query = {**params, "take": "100", **({"from": cursor} if cursor else {})}
        page = await api.ok("GET", f"/v1/event-streams/{stream_id}/deliveries", params=query)
        found.update({d["event_id"]: d["status"] for d in page["deliveries"]})
        cursor = page["next"]
        if cursor is None:
            return found


async def test_the_full_story_deliver_fail_dead_letter_recover_redeliver(
    settings: Settings,
    system: tuple[Api, Dispatcher],
    receiver: Receiver,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A stream created through the API receives events (with its secret token); while the
    endpoint fails, events retry through both tiers into the DLQ; after it recovers,
    POST /redeliver delivers exactly what was lost, and history and stats tell the story.
    No secret appears in any response or in the processes' output."""
    api, _dispatcher = system
    started = datetime.now(UTC) - timedelta(seconds=1)
    stream = await api.ok("POST", "/v1/event-streams", secret_stream(receiver.url()))
    sid = stream["id"]
    assert "token" not in str(stream)

    first = produce_events(settings, 3)
    await receiver.wait_until(lambda: receiver.delivered_ids() >= set(first))
    assert receiver.requests[0].headers["Authorization"] == f"Bearer {SECRETS['bearer']}"
    assert "webhook-signature" in receiver.requests[0].headers

    receiver.script = lambda _r, _n: 503
    lost = produce_events(settings, 2)

    async def lost_are_dead() -> bool:
        found = await statuses(api, sid, statuses="failed")
        return set(found) == set(lost)

    await eventually(lost_are_dead)
    detail = await api.ok("GET", f"/v1/event-streams/{sid}/deliveries/{lost[0]}")
    assert [(a["attempt"], a["status"], a["http_status"]) for a in detail["attempts"]] == [
        (1, "retrying", 503),
        (2, "retrying", 503),
        (3, "failed", 503),
    ]
    assert detail["attempts"][0]["next_attempt_at"] is not None
    assert "retries exhausted" in detail["dead_letter"]["reason"]
    assert detail["status"] == "failed"
    # What was sent: the event as delivered to this stream, read back from Kafka.
    sent = detail["event"]
    assert (sent["id"], sent["a0stream"], sent["type"]) == (lost[0], sid, detail["event_type"])

    receiver.script = lambda _r, _n: 200
    status, accepted = await api.call("POST", f"/v1/event-streams/{sid}/redeliver")
    assert (status, accepted) == (202, {"count": 2, "skipped": 0})
    await receiver.wait_until(lambda: receiver.delivered_ids() == set(first) | set(lost))

    async def all_succeeded() -> bool:
        found = await statuses(api, sid)
        return found == dict.fromkeys(first + lost, "success")

    await eventually(all_succeeded)
    detail = await api.ok("GET", f"/v1/event-streams/{sid}/deliveries/{lost[0]}")
    assert [a["status"] for a in detail["attempts"]] == [
        "retrying",
        "retrying",
        "failed",
        "success",
    ]

    # Stats: totals match what the receiver answered; buckets match the attempts' times.
    ended = datetime.now(UTC) + timedelta(seconds=1)
    window = {
        "date_from": started.isoformat().replace("+00:00", "Z"),
        "date_to": ended.isoformat().replace("+00:00", "Z"),
        "bucket": "2s",
    }
    answered = Counter("success" if 200 <= r.status < 300 else "failed" for r in receiver.requests)

    async def stats_complete() -> Any:
        stats = await api.ok("GET", f"/v1/event-streams/{sid}/stats", params=window)
        totals = stats["totals"]
        return (
            stats
            if (totals["successful"], totals["failed"]) == (answered["success"], answered["failed"])
            else None
        )

    stats = await eventually(stats_complete)
    assert (stats["totals"]["successful"], stats["totals"]["failed"]) == (5, 6)
    expected: Counter[tuple[str, str]] = Counter()
    for event_id in first + lost:
        for attempt in (await api.ok("GET", f"/v1/event-streams/{sid}/deliveries/{event_id}"))[
            "attempts"
        ]:
            at = datetime.fromisoformat(attempt["at"])
            second = int(at.timestamp()) // 2 * 2
            start = datetime.fromtimestamp(second, UTC).isoformat().replace("+00:00", "Z")
            expected[(start, "success" if attempt["status"] == "success" else "failed")] += 1
    for bucket in stats["buckets"]:
        assert bucket["successful"] == expected[(bucket["start"], "success")], bucket
        assert bucket["failed"] == expected[(bucket["start"], "failed")], bucket
    output = "".join(capfd.readouterr())
    assert "stream_created" in output, "the output was captured"
    for name, secret in SECRETS.items():
        assert secret not in output, f"the {name} secret was logged"


async def test_test_events_arrive_marked_as_tests(
    system: tuple[Api, Dispatcher], receiver: Receiver
) -> None:
    """POST /test delivers a sample (or the given data) with a0purpose "test" to that stream
    only, and the history marks it as a test."""
    api, dispatcher = system
    stream = await api.create(receiver.url("mine"))
    other = await api.create(receiver.url("other"))

    # A tier record for a stream the dispatcher has not read from the registry yet is
    # dropped as if the stream were deleted (reported); wait until it knows the stream.
    async def dispatcher_knows() -> bool:
        return stream["id"] in dispatcher.registry.streams

    await eventually(dispatcher_knows)
    status, sample = await api.call(
        "POST", f"/v1/event-streams/{stream['id']}/test", {"event_type": "user.deleted"}
    )
    assert status == 202
    data = {"user_id": "auth0|given", "email": "given@example.com"}
    given = await api.ok(
        "POST",
        f"/v1/event-streams/{stream['id']}/test",
        {"event_type": "user.created", "data": data},
    )
    await receiver.wait_until(
        lambda: receiver.delivered_ids("mine") == {sample["event_id"], given["event_id"]}
    )
    bodies = {r.event_id: r.json for r in receiver.delivered("mine")}
    assert bodies[sample["event_id"]]["a0purpose"] == "test"
    assert bodies[sample["event_id"]]["type"] == "user.deleted"
    assert bodies[sample["event_id"]]["a0stream"] == stream["id"]
    assert bodies[given["event_id"]]["data"]["object"]["user_id"] == "auth0|given"
    assert not receiver.delivered("other")

    async def marked() -> Any:
        page = await api.ok("GET", f"/v1/event-streams/{stream['id']}/deliveries")
        return {d["purpose"] for d in page["deliveries"]} == {"test"} and len(
            page["deliveries"]
        ) == 2

    await eventually(marked)
    disabled = await api.ok("PATCH", f"/v1/event-streams/{other['id']}", {"status": "disabled"})
    status, body = await api.call(
        "POST", f"/v1/event-streams/{disabled['id']}/test", {"event_type": "user.created"}
    )
    assert (status, body["code"]) == (409, "stream_disabled")


async def test_history_filters_and_pages(
    settings: Settings, system: tuple[Api, Dispatcher], receiver: Receiver
) -> None:
    """Statuses, event types and dates filter the history; pages of 2 cover every event once,
    newest first; a single event whose records expired cannot be redelivered (409)."""
    api, _dispatcher = system
    receiver.script = lambda r, _n: 400 if r.json["type"] == "user.deleted" else 200
    stream = await api.create(receiver.url())
    sid = stream["id"]
    ids = produce_events(settings, 7, ("user.created", "user.deleted", "organization.created"))
    deleted = set(ids[1::3])

    async def all_seen() -> bool:
        return len(await statuses(api, sid)) == 7

    await eventually(all_seen)
    assert set(await statuses(api, sid, statuses="failed")) == deleted
    assert set(await statuses(api, sid, statuses="success,retrying")) == set(ids) - deleted
    assert set(await statuses(api, sid, event_types="organization.*")) == set(ids[2::3])
    assert set(await statuses(api, sid, event_types="user.*", statuses="success")) == set(ids[0::3])
    assert await statuses(api, sid, date_from="2999-01-01T00:00:00Z") == {}
    assert await statuses(api, sid, date_to="2000-01-01T00:00:00Z") == {}

    seen: list[str] = []
    starts: list[str] = []
    cursor = None
    for _ in range(5):
        query = {"take": "2", **({"from": cursor} if cursor else {})}
        page = await api.ok("GET", f"/v1/event-streams/{sid}/deliveries", params=query)
        assert len(page["deliveries"]) <= 2
        seen += [d["event_id"] for d in page["deliveries"]]
        starts += [d["first_attempt_at"] for d in page["deliveries"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert starts == sorted(starts, reverse=True)

    victim = sorted(deleted)[0]
    status, body = await api.call("POST", f"/v1/event-streams/{sid}/redeliver/{victim}")
    assert (status, body) == (202, {"event_id": victim})
    await receiver.wait_until(lambda: [r.event_id for r in receiver.requests].count(victim) == 2)

    async def redelivery_dead_lettered() -> bool:
        # The attempt is logged once its new dead letter is acknowledged: only then may the
        # truncation below be sure to expire it.
        detail = await api.ok("GET", f"/v1/event-streams/{sid}/deliveries/{victim}")
        return len(detail["attempts"]) == 2

    await eventually(redelivery_dead_lettered)

    # Expire every record that could serve a redelivery: the DLQ and the lifecycle topic.
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    await asyncio.to_thread(_truncate, admin, settings, settings.dlq_topic)
    await asyncio.to_thread(_truncate, admin, settings, settings.lifecycle_topic)
    status, body = await api.call("POST", f"/v1/event-streams/{sid}/redeliver/{victim}")
    assert (status, body["code"]) == (409, "not_redeliverable")
    status, body = await api.call("POST", f"/v1/event-streams/{sid}/redeliver")
    assert (status, body) == (202, {"count": 0, "skipped": len(deleted)})


def _truncate(admin: AdminClient, settings: Settings, topic: str) -> None:
    """Delete every record of ``topic`` (as retention would)."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    futures = admin.delete_records([TopicPartition(topic, p, -1) for p in partitions])
    for future in futures.values():
        future.result(timeout=10)
