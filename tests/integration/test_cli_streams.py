"""``tidings event-streams ...`` against the real admin API, broker, dispatcher and receiver.

The CLI handlers are synchronous HTTP clients; they run on a thread so the API, the
dispatcher and the receiver keep running in the test's event loop meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from admin import apply, cli_streams
from admin.broker import free_port
from admin.cli import build_parser
from admin_kit import SECRETS, TOKEN, Api, start_api
from dispatch_kit import produce_events, running_dispatcher, until
from dispatcher.service import Dispatcher
from producer.config import Settings
from receiver import Receiver

#: A line of structlog's console renderer (the services' logs in this process).
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+ *\] .*\n", re.MULTILINE)


def parser() -> argparse.ArgumentParser:
    """``tidings``'s parser, with ``event-streams`` and ``apply`` added unless they are
    wired in already."""
    root = build_parser()
    commands = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    for name, module in (("event-streams", cli_streams), ("apply", apply)):
        if name not in commands.choices:
            module.register_cli(commands)
    return root


class Cli:
    """Runs ``tidings <command> <argv>`` against one admin API, capturing its output."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        capsys: pytest.CaptureFixture[str],
        command: str = "event-streams",
    ) -> None:
        self.url = url
        self.settings = settings
        self.capsys = capsys
        self.command = command

    async def __call__(self, *argv: str, token: str = TOKEN) -> tuple[int, str, str]:
        """Exit status, stdout and stderr of one command."""
        argv = (self.command, *argv, "--url", self.url, "--token", token)
        args = parser().parse_args(argv)
        self.capsys.readouterr()
        code: int = await asyncio.to_thread(args.handler, args, self.settings)
        return code, *self.output()

    def output(self) -> tuple[str, str]:
        """Captured stdout and stderr without the log lines of the in-process API and
        dispatcher, which share this process's stdout."""
        out, err = self.capsys.readouterr()
        return _LOG_LINE.sub("", out), _LOG_LINE.sub("", err)

    async def json(self, *argv: str) -> Any:
        """The parsed ``--json`` output of a command that must succeed."""
        code, out, err = await self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    async def until(self, argv: tuple[str, ...], done: Callable[[Any], bool]) -> Any:
        """Repeat a ``--json`` command until its answer satisfies ``done`` (the admin view
        follows Kafka, a moment behind the receiver)."""
        for _ in range(200):
            answer = await self.json(*argv)
            if done(answer):
                return answer
            await asyncio.sleep(0.1)
        raise AssertionError(f"{argv}: never satisfied; last: {answer!r}")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[TestClient[Any, Any], Api]]:
    """A ready admin API on fresh topics."""
    client, api = await start_api(settings)
    try:
        yield client, api
    finally:
        await client.close()


@pytest.fixture
def cli(
    api: tuple[TestClient[Any, Any], Api], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """The CLI pointed at the test's API."""
    client, _api = api
    return Cli(str(client.make_url("")), settings, capsys)


@pytest.fixture
async def dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    """A running dispatcher on the test's topics."""
    async with running_dispatcher(settings) as dispatcher:
        yield dispatcher


def assert_no_secret(*outputs: str) -> None:
    for text in outputs:
        for name, secret in SECRETS.items():
            assert secret not in text, f"the {name} secret was printed"


async def test_create_show_list_update_delete_round_trip(
    cli: Cli, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream created from options is shown (by id and by name), listed, updated and
    deleted through the CLI; tables and --json say the same; no secret is ever printed."""
    code, out, err = await cli(
        "create",
        "--name",
        "crm",
        "--type",
        "user.*",
        "--type",
        "organization.created,organization.deleted",
        "--endpoint",
        receiver.url(),
        "--bearer-token",
        SECRETS["bearer"],
        "--signing-secret",
        SECRETS["signing"],
        "--timeout",
        "5s",
        "--max-in-flight",
        "8",
        "--ordering",
        "subject",
    )
    assert (code, err) == (0, "")
    assert out.startswith("Created event stream est_")
    sid = out.split()[3].rstrip(".")
    assert f"destination:     {receiver.url()} (bearer token)" in out
    assert "signing secrets: 1 (write-only)" in out
    assert "ordering:        subject" in out

    shown = await cli.json("show", sid)
    assert shown["id"] == sid
    assert [s["event_type"] for s in shown["subscriptions"]] == [
        "user.*",
        "organization.created",
        "organization.deleted",
    ]
    assert shown["destination"]["configuration"]["webhook_authorization"] == {"method": "bearer"}
    assert (shown["delivery"]["timeout"], shown["delivery"]["max_in_flight"]) == ("5s", 8)
    assert shown["delivery"]["ordering"] == "subject"
    assert shown["signing_secrets_count"] == 1
    assert await cli.json("show", "crm") == shown, "a unique name names the stream"

    code, out, _err = await cli("list")
    header, row, footer = out.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "TYPES", "DESTINATION", "UPDATED"]
    assert row.split()[:3] == [sid, "crm", "enabled"]
    assert footer == "(1 event stream)"
    assert [s["id"] for s in await cli.json("list")] == [sid]

    updated = await cli.json("update", "crm", "--status", "disabled", "--timeout", "2s")
    assert (updated["status"], updated["delivery"]["timeout"]) == ("disabled", "2s")
    assert updated["delivery"]["max_in_flight"] == 8, "delivery is merged key by key"
    assert updated["destination"] == shown["destination"], "an untouched destination is kept"

    # A new endpoint alone would silently drop the bearer token: refused, nothing changed.
    code, out, err = await cli("update", sid, "--endpoint", receiver.url("v2"))
    assert (code, out) == (1, "")
    assert err.startswith("error: the destination is replaced as a whole")
    assert err.count("\n") == 1
    assert (await cli.json("show", sid))["updated_at"] == updated["updated_at"]
    moved = await cli.json("update", sid, "--endpoint", receiver.url("v2"), "--no-auth")
    assert moved["destination"]["configuration"] == {
        "webhook_endpoint": receiver.url("v2"),
        "webhook_authorization": None,
    }
    basic = await cli.json("update", sid, "--basic", "alice:" + SECRETS["password"])
    assert basic["destination"]["configuration"] == {
        "webhook_endpoint": receiver.url("v2"),
        "webhook_authorization": {"method": "basic", "username": "alice"},
    }, "an authorization alone keeps the current endpoint"

    answers = iter(["n"])
    monkeypatch.setattr("builtins.input", lambda _prompt: next(answers))
    code, out, err = await cli("delete", sid)
    assert (code, err) == (1, "Aborted; nothing deleted.\n")
    assert (await cli.json("show", sid))["id"] == sid
    code, out, _err = await cli("delete", sid, "--yes")
    assert (code, out) == (0, f"Deleted event stream {sid} (crm).\n")
    code, out, err = await cli("show", sid)
    assert (code, out, err) == (1, "", f"error: no event stream {sid!r}\n")
    assert await cli.json("list") == []
    assert_no_secret(out, err)


async def test_create_from_json_with_options_on_top(
    cli: Cli, receiver: Receiver, tmp_path: Path
) -> None:
    """``--from-json @file`` gives the whole body and options override its fields."""
    body = {
        "name": "from-file",
        "subscriptions": [{"event_type": "user.created"}],
        "destination": {
            "type": "webhook",
            "configuration": {
                "webhook_endpoint": receiver.url(),
                "webhook_authorization": {
                    "method": "custom_header",
                    "header_key": "X-Api-Key",
                    "header_value": SECRETS["header"],
                },
            },
        },
        "delivery": {"timeout": "3s"},
    }
    path = tmp_path / "stream.json"
    path.write_text(json.dumps(body))
    created = await cli.json("create", "--from-json", f"@{path}", "--name", "override")
    assert created["name"] == "override"
    assert created["delivery"]["timeout"] == "3s"
    assert created["destination"]["configuration"]["webhook_authorization"] == {
        "method": "custom_header",
        "header_key": "X-Api-Key",
    }
    inline = await cli.json("create", "--from-json", json.dumps({**body, "name": "inline"}))
    assert inline["name"] == "inline"
    code, _out, err = await cli("show", "nothing-has-this-name")
    assert (code, err) == (1, "error: no event stream has the id or name 'nothing-has-this-name'\n")


async def test_errors_are_one_line_and_exit_status_1(
    cli: Cli, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """A 400 prints the API's message and field, a wrong token the API's message, an
    unreachable API its address, a bad time its option: one line each, exit status 1."""
    code, out, err = await cli(
        "create", "--name", "x", "--type", "user.*", "--endpoint", "ftp://example.com/hook"
    )
    assert (code, out) == (1, "")
    assert err == (
        "error: must be an absolute http(s) URL "
        "(field: destination.configuration.webhook_endpoint)\n"
    )
    code, out, err = await cli("create", "--name", "x", "--endpoint", receiver.url())
    assert (code, err) == (1, "error: required (field: subscriptions)\n")

    code, out, err = await cli("list", token="not-the-token-at-all")
    assert (code, err) == (1, "error: the token is not valid\n")

    closed = f"http://127.0.0.1:{free_port()}"
    nowhere = Cli(closed, settings, cli.capsys)
    code, out, err = await nowhere("list")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot reach the admin API at {closed}: ")
    assert "refused" in err.lower()
    assert err.count("\n") == 1

    sid = (await cli.json("create", "--name", "x", "--type", "*", "--endpoint", receiver.url()))[
        "id"
    ]
    code, out, err = await cli("deliveries", "list", sid, "--from", "yesterday")
    assert (code, out) == (1, "")
    assert err.startswith("error: --from: 'yesterday' is not a time")
    code, out, err = await cli("stats", sid, "--bucket", "1ms")
    assert (code, err) == (1, "error: must be between 1s and 1d (field: bucket)\n")

    # Without --url/--token the environment is used.
    monkeypatch.setenv("TIDINGS_ADMIN_URL", cli.url)
    monkeypatch.setenv("TIDINGS_ADMIN_TOKEN", TOKEN)
    args = parser().parse_args(["event-streams", "list", "--json"])
    cli.capsys.readouterr()
    assert await asyncio.to_thread(args.handler, args, settings) == 0
    assert [s["id"] for s in json.loads(cli.output()[0])] == [sid]


async def test_trigger_sends_a_test_event_to_the_receiver(
    cli: Cli, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """``trigger`` delivers a test event (a sample, or the given data) marked
    ``a0purpose: test``; the history shows it as a test with its attempt."""
    sid = (
        await cli.json("create", "--name", "t", "--type", "user.*", "--endpoint", receiver.url())
    )["id"]
    await until(lambda: sid in dispatcher.registry.streams)
    code, out, err = await cli("trigger", "t", "user.created", "--data", '{"user_id": "auth0|cli"}')
    assert (code, err) == (0, "")
    event_id = out.split()[2]
    assert out == f"Test event {event_id} (user.created) sent to {sid}.\n"
    await receiver.wait_until(lambda: event_id in receiver.delivered_ids())
    body = receiver.delivered()[0].json
    assert (body["a0purpose"], body["type"], body["a0stream"]) == ("test", "user.created", sid)
    assert body["data"]["object"]["user_id"] == "auth0|cli"

    page = await cli.until(("deliveries", "list", sid), lambda p: len(p["deliveries"]) == 1)
    assert page["deliveries"][0]["event_id"] == event_id
    code, out, _err = await cli("deliveries", "list", sid)
    assert "user.created (test)" in out
    code, out, _err = await cli("deliveries", "show", sid, event_id)
    assert out.splitlines()[:3] == [
        f"event:   {event_id} (user.created, test)",
        f"stream:  {sid}",
        "status:  success",
    ]
    attempt = out.splitlines()[4].split()
    assert (attempt[0], attempt[2], attempt[3]) == ("1", "success", "200")


async def test_failed_deliveries_are_listed_shown_redelivered_and_counted(
    settings: Settings, cli: Cli, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """An endpoint answering 400 dead-letters three events at once; ``deliveries`` lists and
    shows them; after the endpoint recovers ``redeliver`` (one id) and ``redeliver-many``
    (by time, given as ``--from -1h``) deliver them; ``stats`` counts 3 failed, 3 successful."""
    receiver.script = lambda _r, _n: 400
    sid = (await cli.json("create", "--name", "r", "--type", "*", "--endpoint", receiver.url()))[
        "id"
    ]
    await until(lambda: sid in dispatcher.registry.streams)
    ids = await asyncio.to_thread(produce_events, settings, 3)

    # Each dead letter is acknowledged before its attempt is logged: wait for both.
    failed = await cli.until(
        ("deliveries", "list", sid, "--status", "failed"),
        lambda p: [d["attempts"] for d in p["deliveries"]] == [1, 1, 1],
    )
    assert {d["event_id"] for d in failed["deliveries"]} == set(ids)
    assert {d["last_http_status"] for d in failed["deliveries"]} == {400}
    code, out, _err = await cli("deliveries", "list", sid, "--status", "failed")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["FIRST", "ATTEMPT", "EVENT", "ID"]
    assert {line.split()[1] for line in lines[1:4]} == set(ids)
    assert lines[-1] == "(3 deliveries)"

    first = await cli.json("deliveries", "list", sid, "--take", "1")
    assert len(first["deliveries"]) == 1
    assert first["next"]
    code, out, _err = await cli("deliveries", "list", sid, "--take", "1")
    assert out.splitlines()[-1] == f"(1 delivery; more with --all or --cursor {first['next']})"
    rest = await cli.json("deliveries", "list", sid, "--take", "1", "--cursor", first["next"])
    assert rest["deliveries"][0]["event_id"] != first["deliveries"][0]["event_id"]
    everything = await cli.json("deliveries", "list", sid, "--take", "1", "--all")
    assert sorted(d["event_id"] for d in everything["deliveries"]) == sorted(ids)
    assert everything["next"] is None

    code, out, _err = await cli("deliveries", "show", sid, ids[0])
    lines = out.splitlines()
    assert lines[2] == "status:  failed"
    assert lines[3].startswith("dead-lettered: ")
    assert lines[5].split()[0] == "1"
    assert lines[5].split()[2:4] == ["failed", "400"]
    detail = await cli.json("deliveries", "show", sid, ids[0])
    assert [(a["attempt"], a["http_status"]) for a in detail["attempts"]] == [(1, 400)]

    receiver.script = lambda _r, _n: 200
    unknown = "evt_0000000000000000000000"
    code, out, err = await cli("redeliver", sid, ids[0], unknown)
    assert code == 1
    assert out == f"Redelivering {ids[0]}.\n"
    assert err == f"error: {unknown}: {unknown!r} was never delivered to this stream\n"
    await receiver.wait_until(lambda: ids[0] in receiver.delivered_ids())
    await cli.until(
        ("deliveries", "list", sid, "--status", "failed"), lambda p: len(p["deliveries"]) == 2
    )

    code, out, err = await cli("redeliver-many", sid, "--from", "-1h")
    assert (code, out, err) == (0, f"Redelivering 2 events to {sid}.\n", "")
    await receiver.wait_until(lambda: receiver.delivered_ids() == set(ids))
    await cli.until(
        ("deliveries", "list", sid, "--status", "success"), lambda p: len(p["deliveries"]) == 3
    )
    assert await cli.json("redeliver-many", sid) == {"count": 0, "skipped": 0}

    stats = await cli.until(
        ("stats", sid, "--from", "-10m", "--bucket", "1m"),
        lambda s: s["totals"] == {"successful": 3, "failed": 3},
    )
    assert stats["bucket"] == "1m"
    assert sum(b["failed"] for b in stats["buckets"]) == 3
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=11)
    window = ("--from", start.isoformat(), "--to", end.isoformat(), "--bucket", "1m")
    code, out, _err = await cli("stats", sid, *window)
    lines = out.splitlines()
    assert lines[0].split() == ["BUCKET", "(1m)", "SUCCESS", "FAILED"]
    assert len(lines) == 13, "eleven one-minute buckets, a header and the total"
    assert lines[1].split()[0] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sum(int(line.split()[2]) for line in lines[1:-1]) == 3
    assert lines[-1].split() == ["total", "3", "3"]
