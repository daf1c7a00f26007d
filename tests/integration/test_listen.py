"""`tidings listen` end to end: the real broker, the admin API's Events API, and a local
receiver on 127.0.0.1, with a restart in the middle and a failing receiver."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections import Counter
from pathlib import Path

from standardwebhooks import Webhook

from admin.listen import ListenOptions, listen
from admin_kit import TOKEN, start_api
from auth0_catalog import problems
from dispatch_kit import produce_events
from dispatcher.signing import generate_secret
from producer.config import Settings
from receiver import Receiver


async def _running(options: ListenOptions, out: io.StringIO) -> asyncio.Task[None]:
    task = asyncio.create_task(listen(options, out=out))
    state = options.state_file
    for _ in range(400):  # connected once the first cursor (offset-only) is saved
        if state.exists() or task.done():
            break
        await asyncio.sleep(0.05)
    assert state.exists(), out.getvalue()
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_listen_forwards_signed_events_and_resumes_after_a_restart(
    settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    """Every event reaches the local URL as a signed webhook would (the same JSON, a0stream
    included, valid against Auth0's catalog; webhook-id; a signature the reference verifier
    accepts); a 503 is retried with back-off; stopping
    and restarting listen with its state file loses nothing (lost = 0)."""
    client, _api = await start_api(settings)
    secret = generate_secret()
    options = ListenOptions(
        forward_to=receiver.url("local"),
        api_url=str(client.make_url("")).rstrip("/"),
        token=TOKEN,
        patterns=("user.*", "group.*"),
        secrets=(secret,),
        state_file=tmp_path / "listen.json",
    )
    receiver.script = lambda r, n: 503 if r.json["type"] == "group.created" and n == 0 else 200
    types = ("user.created", "group.created", "organization.created", "group.member.added")
    out = io.StringIO()
    try:
        task = await _running(options, out)
        first = await asyncio.to_thread(produce_events, settings, 12, types)
        wanted_first = {i for n, i in enumerate(first) if types[n % 4] != "organization.created"}
        await receiver.wait_until(lambda: receiver.delivered_ids() >= wanted_first)
        await _stop(task)

        second = await asyncio.to_thread(produce_events, settings, 12, types)  # while stopped
        wanted = wanted_first | {
            i for n, i in enumerate(second) if types[n % 4] != "organization.created"
        }
        task = await _running(options, out)
        await receiver.wait_until(lambda: receiver.delivered_ids() >= wanted)
        await asyncio.sleep(0.5)  # anything unwanted would arrive by now
        await _stop(task)
    finally:
        await client.close()

    delivered = Counter(r.event_id for r in receiver.delivered())
    lost = wanted - set(delivered)
    repeated = sum(n - 1 for n in delivered.values())
    print(
        f"listen across a restart: forwarded={len(delivered)} lost={len(lost)} repeated={repeated}"
    )
    assert (len(lost), set(delivered) - wanted) == (0, set())
    assert repeated <= 1, "at most the event in flight at the restart is sent twice"
    verifier = Webhook(secret)
    for request in receiver.requests:
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["webhook-id"] == request.json["id"]
        verifier.verify(request.body, dict(request.headers))
        assert problems(request.json) == [], "a body Auth0's catalog accepts, a0stream and all"
    streams = {request.json["a0stream"] for request in receiver.requests}
    assert streams == {settings.events_api_stream_id}, "the Events API's stream, as served"
    log = out.getvalue()
    assert "-> 503" in log
    assert "retrying in" in log
    assert log.count("-> 200") >= len(wanted)  # one line per event the receiver accepted
    assert "resuming after the cursor" in log
