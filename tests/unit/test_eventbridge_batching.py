"""Tests for EventBridgeClient's micro-batching and failure handling, with the AWS call
replaced by a scripted fake (the real call is exercised against moto in the integration
tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from dispatcher.destinations import Delivery
from dispatcher.eventbridge import MAX_ENTRIES, MAX_ENTRY_BYTES, EventBridgeClient
from dispatcher.jobs import Job
from dispatcher.outcome import OutcomeKind
from moto_server import eventbridge_stream

Answer = Callable[[list[dict[str, Any]]], Mapping[str, Any]]


def accept_all(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
    """What PutEvents answers when every entry is accepted."""
    return {
        "FailedEntryCount": 0,
        "Entries": [{"EventId": f"e{i}"} for i in range(len(entries))],
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


class FakeAws:
    """Stands in for EventBridgeClient._put_events: records each call, answers ``answer``."""

    def __init__(self, answer: Answer = accept_all, delay: float = 0.0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.answer = answer
        self.delay = delay

    async def __call__(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        self.calls.append(entries)
        await asyncio.sleep(self.delay)
        return self.answer(entries)


def client_with(fake: FakeAws, **delivery: Any) -> EventBridgeClient:
    client = EventBridgeClient(eventbridge_stream("bus", delivery=delivery))
    client._put_events = fake  # type: ignore[method-assign]
    return client


def delivery(n: int, *, padding: int = 0) -> Delivery:
    body = {
        "type": "user.created",
        "id": f"evt_{n}",
        "time": "2026-01-02T03:04:05.678Z",
        "a0tenant": "acme",
        "data": {"object": {"pad": "x" * padding}},
    }
    job = Job(
        stream_id="est_x", event_id=f"evt_{n}", event_type="user.created", value=b"", key=None
    )
    return Delivery(job, json.dumps(body).encode())


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [json.loads(e["Detail"])["id"] for e in entries]


async def test_concurrent_deliveries_share_calls_of_at_most_ten() -> None:
    """25 deliveries at once take three PutEvents calls (10, 10, 5), in arrival order."""
    fake = FakeAws()
    client = client_with(fake)
    outcomes = await asyncio.gather(*(client.deliver([delivery(n)]) for n in range(25)))
    assert [len(call) for call in fake.calls] == [MAX_ENTRIES, MAX_ENTRIES, 5]
    assert [i for call in fake.calls for i in ids(call)] == [f"evt_{n}" for n in range(25)]
    assert all(o == [o[0]] and o[0].kind is OutcomeKind.SUCCESS for o in outcomes)
    await client.close()


async def test_each_caller_gets_the_outcome_of_its_own_entry() -> None:
    """In a partial failure only the failed entries' callers see the failure."""

    def fail_odd(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        results: list[dict[str, Any]] = []
        for n in (int(i.removeprefix("evt_")) for i in ids(entries)):
            error = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
            results.append(error if n % 2 else {"EventId": str(n)})
        return {"FailedEntryCount": len(entries) // 2, "Entries": results}

    client = client_with(FakeAws(fail_odd))
    outcomes = await asyncio.gather(*(client.deliver([delivery(n)]) for n in range(6)))
    assert [o[0].kind for o in outcomes] == [OutcomeKind.SUCCESS, OutcomeKind.RETRYABLE] * 3
    assert outcomes[1][0].error == "ThrottlingException: slow down"
    await client.close()


async def test_a_lone_delivery_waits_only_the_linger() -> None:
    """A single delivery is sent alone, after the linger (not held for company)."""
    fake = FakeAws()
    client = client_with(fake)
    async with asyncio.timeout(0.5):
        (outcome,) = await client.deliver([delivery(1)])
    assert outcome.kind is OutcomeKind.SUCCESS
    assert [len(call) for call in fake.calls] == [1]
    await client.close()


async def test_a_call_never_carries_more_than_256_kib() -> None:
    """Three 100 KiB entries need two calls: the entries of one call add up to the limit."""
    fake = FakeAws()
    client = client_with(fake)
    await asyncio.gather(*(client.deliver([delivery(n, padding=100_000)]) for n in range(3)))
    assert [len(call) for call in fake.calls] == [2, 1]
    await client.close()


async def test_an_oversized_event_is_never_sent() -> None:
    """An entry over 256 KiB is answered permanent without a call; its neighbours go out."""
    fake = FakeAws()
    client = client_with(fake)
    big, small = await asyncio.gather(
        client.deliver([delivery(1, padding=MAX_ENTRY_BYTES)]), client.deliver([delivery(2)])
    )
    assert big[0].kind is OutcomeKind.PERMANENT
    assert "limit is 262144 bytes" in (big[0].error or "")
    assert small[0].kind is OutcomeKind.SUCCESS
    assert [ids(call) for call in fake.calls] == [["evt_2"]]
    await client.close()


def _raise(exc: Exception) -> Answer:
    def answer(_entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        raise exc

    return answer


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutEvents",
    )


@pytest.mark.parametrize(
    ("exc", "kind", "status", "error"),
    [
        (_client_error("ThrottlingException", 400), "retryable", 400, "ThrottlingException: m"),
        (_client_error("InternalException", 500), "retryable", 500, "InternalException: m"),
        (_client_error("AccessDeniedException", 400), "permanent", 400, "AccessDeniedException: m"),
        (_client_error("ValidationException", 400), "permanent", 400, "ValidationException: m"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            "retryable",
            None,
            'EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:1"',
        ),
    ],
)
async def test_a_failed_call_fails_every_entry_alike(
    exc: Exception, kind: str, status: int | None, error: str
) -> None:
    """An error of the whole call is every entry's outcome, classified by its code."""
    client = client_with(FakeAws(_raise(exc)))
    outcomes = await asyncio.gather(*(client.deliver([delivery(n)]) for n in range(3)))
    assert {(o[0].kind, o[0].http_status, o[0].error) for o in outcomes} == {(kind, status, error)}
    await client.close()


async def test_a_call_past_the_delivery_timeout_is_retryable() -> None:
    """A call slower than the stream's timeout is abandoned and retried later."""
    client = client_with(FakeAws(delay=5), timeout="200ms")
    async with asyncio.timeout(2):
        (outcome,) = await client.deliver([delivery(1)])
    assert (outcome.kind, outcome.error) == (OutcomeKind.RETRYABLE, "timeout after 0.2s")
    await client.close()


async def test_close_sends_what_waits_and_is_idempotent() -> None:
    """close() lets waiting deliveries finish; later deliveries are retryable; twice is fine."""
    fake = FakeAws(delay=0.05)
    client = client_with(fake)
    waiting = asyncio.ensure_future(client.deliver([delivery(1)]))
    await asyncio.sleep(0)
    await client.close()
    assert (await waiting)[0].kind is OutcomeKind.SUCCESS
    (late,) = await client.deliver([delivery(2)])
    assert (late.kind, late.error) == (OutcomeKind.RETRYABLE, "client closed")
    await client.close()
    assert len(fake.calls) == 1
