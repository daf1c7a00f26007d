"""The dashboard in a real headless Chromium against the real system: the admin API, a
dispatcher and a receiver on the session's Kafka broker. Everything is driven through the
page (token prompt, streams list, history, attempts, test event, redelivery, disable and
enable, the stream form with the API's validation error shown next to its field)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from admin_kit import SECRETS, TOKEN, Api, running_system
from dispatch_kit import produce_events, until
from dispatcher.service import Dispatcher
from producer.config import Settings
from receiver import Receiver

#: Where the lead looks at the last run's page.
SHARED_SCREENSHOT = Path("/tmp/tidings-dashboard.png")
TYPES = ("user.created", "user.deleted", "organization.created")
#: The browser logs the API's answers to the wrong token and to the invalid form.
EXPECTED_FAILURES = re.compile(r"status of (400|403)\b")


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[tuple[Api, Dispatcher]]:
    """A ready admin API and a running dispatcher on the same fresh topics."""
    async with running_system(settings) as (api, dispatcher):
        yield api, dispatcher


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser tab (own session storage) that fails the test on any script error or
    console error, content security policy violations included."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not EXPECTED_FAILURES.search(message.text)
            else None
        ),
    )
    yield page
    await context.close()
    assert problems == [], "\n".join(problems)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while not (result := await check()):  # noqa: ASYNC110 - polling the API over HTTP
            await asyncio.sleep(0.2)
    return result


async def latest_status(api: Api, stream_id: str, event_id: str) -> str:
    detail = await api.ok("GET", f"/v1/event-streams/{stream_id}/deliveries/{event_id}")
    return str(detail["status"])


async def test_the_dashboard_drives_a_stream_end_to_end(
    settings: Settings,
    system: tuple[Api, Dispatcher],
    receiver: Receiver,
    page: Page,
    tmp_path: Path,
) -> None:
    """Through the page alone: sign in with the token; the list shows the stream's last hour
    (what the receiver accepted and refused); the history filters to the 2 dead-lettered events and
    to the 2 retried ones, and shows each attempt's HTTP status, error, duration and next
    attempt; the chart draws successful and failed bars; a test event sent from the button
    reaches the receiver and the history; after the receiver recovers, one failed event is
    redelivered from its row and the other by "Redeliver all failed"; disable and enable
    change the stored status; the form shows the API's 400 next to the endpoint field, then
    creates the stream, and no secret typed into it is ever rendered."""
    api, dispatcher = system
    stream = await api.create(receiver.url(), name="crm-sync")
    sid = stream["id"]
    await until(lambda: sid in dispatcher.registry.streams)
    # user.deleted is refused for good (400: dead-lettered at once); organization.created
    # is refused once (503) and delivered by its retry a second later.
    receiver.script = lambda r, n: {
        "user.deleted": 400,
        "organization.created": 503 if n == 0 else 200,
    }.get(r.json["type"], 200)
    ids = await asyncio.to_thread(produce_events, settings, 6, TYPES)
    refused, retried = set(ids[1::3]), set(ids[2::3])
    await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids) - refused)

    # Delivery is at least once: count what the receiver answered rather than assume 4 and 4.
    async def stats_complete() -> Counter[str] | None:
        answered = Counter("successful" if r.status == 200 else "failed" for r in receiver.requests)
        stats = await api.ok("GET", f"/v1/event-streams/{sid}/stats")
        return answered if stats["totals"] == answered else None

    answered = await eventually(stats_complete)
    assert answered["failed"] >= 4
    base = str(api.client.make_url("/dashboard/"))

    # The token prompt, then the streams list.
    await page.goto(base)
    await page.get_by_label("Token").fill("not-the-token")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("alert")).to_have_text("that token is not valid")
    await page.get_by_label("Token").fill(TOKEN)
    await page.get_by_role("button", name="Continue").click()
    row = page.locator(f'#streams tr[data-stream="{sid}"]')
    await expect(row.get_by_role("link")).to_have_text("crm-sync")
    await expect(row).to_contain_text(receiver.url())
    await expect(row.locator(".badge")).to_have_text("enabled")
    await expect(row.locator('[data-col="delivered"]')).to_have_text(str(answered["successful"]))
    await expect(row.locator('[data-col="failed"]')).to_have_text(str(answered["failed"]))
    assert await page.evaluate("sessionStorage.length") == 1
    await page.screenshot(path=tmp_path / "streams.png", full_page=True)

    # The stream's page: history, filters, attempts, chart.
    await row.get_by_role("link").click()
    await expect(page.locator("#stream-header h1")).to_have_text("crm-sync")
    deliveries = page.locator("#deliveries tr.delivery")
    await expect(deliveries).to_have_count(6)
    await expect(page.locator("svg.chart rect.bad")).not_to_have_count(0)
    await expect(page.locator("svg.chart rect.ok")).not_to_have_count(0)
    await expect(page.locator("figcaption")).to_contain_text(f"{answered['successful']} successful")
    await page.locator("#filter-failed").check()
    await page.get_by_role("button", name="Apply").click()
    await expect_rows(page, refused)
    victim = sorted(refused)[0]
    await page.locator(f'tr[data-event="{victim}"] button.attempts').click()
    attempt = page.locator(f'tr[data-detail="{victim}"] tr[data-index="1"]')
    await expect(attempt.locator('[data-col="http"]')).to_have_text("400")
    await expect(attempt.locator('[data-col="error"]')).not_to_be_empty()
    await expect(attempt.locator('[data-col="duration"]')).to_have_text(re.compile(r"^\d+\.\d ms$"))
    await expect(attempt.locator('[data-col="next"]')).to_have_text("—")
    await expect(page.locator(f'tr[data-detail="{victim}"] .dead-letter')).to_contain_text(
        "permanent failure: HTTP 400"
    )
    # What was sent: the event as delivered, read back from Kafka.
    sent = page.locator(f'tr[data-detail="{victim}"] [data-sent="event"]')
    await sent.locator("summary").click()
    await expect(sent.locator("pre")).to_contain_text(f'"id": "{victim}"')
    # A retried event: its first attempt says when the next one was due.
    await page.locator("#filter-failed").uncheck()
    await page.locator("#filter-success").check()
    await page.locator("#filter-types").fill("organization.*")
    await page.get_by_role("button", name="Apply").click()
    await expect_rows(page, retried)
    bounced = sorted(retried)[0]
    await page.locator(f'tr[data-event="{bounced}"] button.attempts').click()
    first, second = (
        page.locator(f'tr[data-detail="{bounced}"] tr[data-index="{i}"]') for i in (1, 2)
    )
    await expect(first.locator(".badge")).to_have_text("retrying")
    await expect(first.locator('[data-col="http"]')).to_have_text("503")
    await expect(first.locator('[data-col="next"]')).to_have_text(re.compile(r"\d\d:\d\d:\d\d"))
    await expect(second.locator('[data-col="http"]')).to_have_text("200")

    # A test event from the button reaches the receiver and the history.
    await page.get_by_label("Test event type").select_option("user.updated")
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.locator("#messages")).to_contain_text("queued")
    message = await page.locator("#messages").inner_text()
    found = re.search(r"evt_\w+", message)
    assert found is not None, message
    test_id = found[0]
    await receiver.wait_until(lambda: test_id in receiver.delivered_ids())
    sent = next(r for r in receiver.requests if r.event_id == test_id)
    assert sent.json["a0purpose"] == "test"
    await page.get_by_role("button", name="Clear").click()
    test_row = page.locator(f'tr[data-event="{test_id}"]')
    await expect(test_row.locator(".tag")).to_have_text("test")
    await expect(test_row.locator(".badge")).to_have_text("success")

    # Redeliver one failed event from its row, then every other failed one.
    receiver.script = lambda _r, _n: 200  # the endpoint recovers
    await page.locator(f'tr[data-event="{victim}"] button.redeliver').click()
    await receiver.wait_until(lambda: victim in receiver.delivered_ids())
    await expect(page.locator(f'tr[data-event="{victim}"] .badge')).to_have_text("success")
    await page.get_by_role("button", name="Redeliver all failed").click()
    await expect(page.locator("#messages")).to_contain_text("1 failed event(s) queued")
    await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids) | {test_id})
    for event_id in refused:
        await expect(page.locator(f'tr[data-event="{event_id}"] .badge')).to_have_text("success")
    assert await latest_status(api, sid, victim) == "success"
    # Its attempts are still open: the refused one and the redelivery.
    redelivered = page.locator(f'tr[data-detail="{victim}"] tr[data-index="2"]')
    await expect(redelivered.locator(".badge")).to_have_text("success")
    await expect(redelivered.locator('[data-col="http"]')).to_have_text("200")
    await page.screenshot(path=tmp_path / "stream.png", full_page=True)
    shutil.copyfile(tmp_path / "stream.png", SHARED_SCREENSHOT)

    # Disable, then enable.
    await page.get_by_role("button", name="Disable").click()
    await expect(page.locator("#stream-header .badge")).to_have_text("disabled")
    await expect(page.get_by_role("button", name="Send test event")).to_be_disabled()
    assert (await api.ok("GET", f"/v1/event-streams/{sid}"))["status"] == "disabled"
    await page.get_by_role("button", name="Enable").click()
    await expect(page.locator("#stream-header .badge")).to_have_text("enabled")
    assert (await api.ok("GET", f"/v1/event-streams/{sid}"))["status"] == "enabled"

    # Create a stream in the form: the API's 400 is shown next to the endpoint field.
    await page.get_by_role("link", name="New stream").first.click()
    await page.get_by_label("Name", exact=True).fill("billing")
    await page.get_by_label("Event types").fill("user.*, organization.created")
    await page.get_by_label("Endpoint URL", exact=True).fill("ftp://example.com/hook")
    await page.get_by_label("Authorization").select_option("bearer")
    await page.get_by_label("Bearer token").fill(SECRETS["bearer"])
    await page.get_by_label("Secret", exact=True).fill(SECRETS["signing"])
    await page.get_by_label("Ordering").select_option("subject")
    await page.get_by_role("button", name="Create stream").click()
    endpoint_field = page.locator('.field[data-for="destination.configuration.webhook_endpoint"]')
    await expect(endpoint_field.locator(".field-error")).to_have_text(
        "must be an absolute http(s) URL"
    )
    await expect(page.get_by_label("Endpoint URL", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    await page.screenshot(path=tmp_path / "form-error.png", full_page=True)
    await page.get_by_label("Endpoint URL", exact=True).fill(receiver.url("billing"))
    await page.get_by_role("button", name="Create stream").click()
    await expect(page.locator("#stream-header h1")).to_have_text("billing")
    await expect(page.locator("#stream-header")).to_contain_text("bearer token")
    created = (await api.ok("GET", "/v1/event-streams"))["event_streams"]
    billing = next(s for s in created if s["name"] == "billing")
    assert billing["subscriptions"] == [
        {"event_type": "user.*"},
        {"event_type": "organization.created"},
    ]
    assert billing["signing_secrets_count"] == 1
    assert billing["delivery"]["ordering"] == "subject"
    await expect(page.locator("#stream-header")).to_contain_text("in order per subject")
    assert billing["destination"]["configuration"]["webhook_authorization"] == {"method": "bearer"}

    # Edit it: a rename is a PATCH of the name alone (the stored secrets are kept).
    await page.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Name", exact=True)).to_have_value("billing")
    await page.get_by_label("Name", exact=True).fill("billing-v2")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#stream-header h1")).to_have_text("billing-v2")
    renamed = await api.ok("GET", f"/v1/event-streams/{billing['id']}")
    assert renamed["signing_secrets_count"] == 1
    assert renamed["destination"] == billing["destination"]

    html = await page.content()
    for name, secret in SECRETS.items():
        assert secret not in html, f"the {name} secret was rendered"


async def expect_rows(page: Page, event_ids: set[str]) -> None:
    """Wait until the history shows exactly these events (not the rows of the previous
    filter, which stay on screen until the new page arrives)."""
    for event_id in event_ids:
        await expect(
            page.locator(f'#deliveries tr.delivery[data-event="{event_id}"]')
        ).to_have_count(1)
    await expect(page.locator("#deliveries tr.delivery")).to_have_count(len(event_ids))


async def test_the_live_tail_shows_new_events_with_the_browsers_event_source(
    settings: Settings, system: tuple[Api, Dispatcher], page: Page
) -> None:
    """The live tail page opens the browser's own EventSource on /v1/events: events produced
    afterwards appear as rows (filtered by the typed event types, newest first), Stop closes
    the connection, and the page keeps no secret besides the session's token."""
    api, _dispatcher = system
    await page.goto(str(api.client.make_url("/dashboard/")))
    await page.get_by_label("Token").fill(TOKEN)
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("link", name="Live tail").click()
    await page.get_by_label("Event types").fill("user.*, group.created")
    await page.get_by_role("button", name="Start").click()
    await expect(page.locator("#tail-status")).to_have_text(re.compile("^Live"))
    assert await page.evaluate("tail instanceof EventSource && tail.readyState === 1")

    types = ("user.created", "organization.created", "group.created", "user.deleted")
    ids = await asyncio.to_thread(produce_events, settings, 8, types)
    wanted = [i for n, i in enumerate(ids) if types[n % 4] != "organization.created"]
    rows = page.locator("#tail tbody tr")
    await expect(rows).to_have_count(len(wanted))
    shown = set(await rows.evaluate_all("rows => rows.map((r) => r.dataset.event)"))
    assert shown == set(wanted)
    await expect(page.locator("#tail tbody")).not_to_contain_text("organization.created")

    # The server's `event: error` (Auth0's {"error": {code, message, offset}}) is shown.
    await page.evaluate(
        """tail.dispatchEvent(new MessageEvent("error", {data: JSON.stringify(
            {error: {code: "connection_timeout", message: "cycled", offset: "MDox"}})}))"""
    )
    await expect(page.locator("#tail-status")).to_have_text("cycled (reconnecting)")

    await page.get_by_role("button", name="Stop").click()
    await expect(page.locator("#tail-status")).to_have_text("Stopped.")
    assert await page.evaluate("tail === null")
    more = await asyncio.to_thread(produce_events, settings, 2, ("user.updated",))
    await page.wait_for_timeout(1000)
    await expect(rows).to_have_count(len(wanted))  # stopped: nothing more arrives
    assert more
