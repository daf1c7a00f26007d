"""``tidings apply`` against the real admin API; the dispatcher and receiver prove that a
secret interpolated from the environment is the one delivered with."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_cli_streams
from aiohttp.test_utils import TestClient
from test_cli_streams import Cli

from admin_kit import SECRETS, Api
from dispatch_kit import running_dispatcher, until
from producer.config import Settings
from receiver import Receiver

FILE = """
streams:
  - name: crm
    subscriptions: [{event_type: "user.*"}]
    destination:
      type: webhook
      configuration:
        webhook_endpoint: CRM_URL
        webhook_authorization: {method: bearer, token: "${WEBHOOK_TOKEN}"}
    signing_secrets: ["${SIGNING_SECRET}"]
  - name: audit
    subscriptions: [{event_type: "*"}]
    destination: {type: webhook, configuration: {webhook_endpoint: "AUDIT_URL"}}
    delivery: {timeout: 5s}
"""
#: The admin API and receiver fixtures, shared with the event-streams CLI tests.
api = test_cli_streams.api

CREATE_CRM = (
    "+ create crm: sends the bearer token, 1 signing secret "
    "(write-only: later applies send them only with --rotate-secrets)"
)
NOTE = (
    "note: secrets are write-only, so they were not compared for crm; "
    "pass --rotate-secrets to send them again."
)


@pytest.fixture
def streams_file(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file, its secrets in the environment."""
    monkeypatch.setenv("WEBHOOK_TOKEN", SECRETS["bearer"])
    monkeypatch.setenv("SIGNING_SECRET", SECRETS["signing"])
    path = tmp_path / "streams.yaml"
    path.write_text(
        FILE.replace("CRM_URL", receiver.url("crm")).replace("AUDIT_URL", receiver.url("audit"))
    )
    return path


@pytest.fixture
def tidings(
    api: tuple[TestClient[Any, Any], Api], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """``tidings apply`` pointed at the test's API."""
    return Cli(str(api[0].make_url("")), settings, capsys, command="apply")


def rewrite(path: Path, change: Callable[[str], str]) -> None:
    """Edit the file in place."""
    path.write_text(change(path.read_text()))


async def listed(api: Api) -> dict[str, dict[str, Any]]:
    """The API's streams by name."""
    answer = await api.ok("GET", "/v1/event-streams")
    return {s["name"]: s for s in answer["event_streams"]}


async def test_apply_creates_updates_and_prunes_and_twice_is_a_no_op(
    settings: Settings,
    api: tuple[TestClient[Any, Any], Api],
    tidings: Cli,
    streams_file: Path,
    receiver: Receiver,
) -> None:
    """A dry run shows the plan and changes nothing; apply creates the streams (the token
    from the environment is the one delivered with); a second apply changes nothing, not
    even updated_at; a changed field is one update; a removed stream is deleted only with
    --prune; --rotate-secrets sends the secrets again. No secret is ever printed."""
    _client, admin = api
    file = str(streams_file)
    outputs: list[str] = []

    async def run(*argv: str) -> list[str]:
        code, out, err = await tidings("-f", file, *argv)
        assert (code, err) == (0, "")
        outputs.append(out)
        return out.splitlines()

    assert await run("--dry-run") == [
        CREATE_CRM,
        "+ create audit",
        "Plan: 2 to create, 0 to update, 0 to delete; 0 unchanged (dry run: nothing changed).",
    ]
    assert await listed(admin) == {}

    assert await run() == [
        CREATE_CRM,
        "+ create audit",
        "Applied: 2 created, 0 updated, 0 deleted; 0 unchanged.",
    ]
    created = await listed(admin)
    crm, audit = created["crm"], created["audit"]
    assert crm["destination"]["configuration"] == {
        "webhook_endpoint": receiver.url("crm"),
        "webhook_authorization": {"method": "bearer"},
    }
    assert crm["signing_secrets_count"] == 1
    assert [s["event_type"] for s in crm["subscriptions"]] == ["user.*"]
    assert (audit["delivery"]["timeout"], audit["status"]) == ("5s", "enabled")

    async with running_dispatcher(settings) as dispatcher:
        await until(lambda: crm["id"] in dispatcher.registry.streams)
        await admin.ok(
            "POST", f"/v1/event-streams/{crm['id']}/test", {"event_type": "user.created"}
        )
        await receiver.wait_until(lambda: bool(receiver.delivered("crm")))
    delivered = receiver.delivered("crm")[0]
    assert delivered.headers["Authorization"] == f"Bearer {SECRETS['bearer']}"
    assert "webhook-signature" in delivered.headers

    assert await run() == [NOTE, "No changes: 2 streams match the file."]
    assert await listed(admin) == created, "nothing was written: updated_at is the same"

    rewrite(
        streams_file,
        lambda t: t.replace(
            "{timeout: 5s}", "{timeout: 3s, ordering: subject}\n    status: disabled"
        ),
    )
    expected_update = [
        "~ update audit: status: enabled -> disabled",
        "~ update audit: delivery.ordering: none -> subject",
        "~ update audit: delivery.timeout: 5s -> 3s",
    ]
    assert await run("--dry-run") == [
        *expected_update,
        NOTE,
        "Plan: 0 to create, 1 to update, 0 to delete; 1 unchanged (dry run: nothing changed).",
    ]
    assert await listed(admin) == created
    assert await run() == [
        *expected_update,
        NOTE,
        "Applied: 0 created, 1 updated, 0 deleted; 1 unchanged.",
    ]
    changed = await listed(admin)
    assert changed["crm"] == crm
    assert changed["audit"]["updated_at"] > audit["updated_at"]
    assert (changed["audit"]["status"], changed["audit"]["delivery"]["timeout"]) == (
        "disabled",
        "3s",
    )
    assert changed["audit"]["delivery"]["ordering"] == "subject"
    assert await run() == [NOTE, "No changes: 2 streams match the file."]

    plan = json.loads("\n".join(await run("--rotate-secrets", "--dry-run", "--json")))
    assert plan["changes"] == [
        {
            "action": "update",
            "name": "crm",
            "id": crm["id"],
            "fields": [],
            "secrets_sent": ["the bearer token", "1 signing secret"],
        }
    ]
    assert await run("--rotate-secrets") == [
        "~ update crm: sends the bearer token, 1 signing secret (--rotate-secrets)",
        "Applied: 0 created, 1 updated, 0 deleted; 1 unchanged.",
    ]
    rotated = await listed(admin)
    assert rotated["crm"]["updated_at"] > crm["updated_at"]

    rewrite(streams_file, lambda t: t[: t.index("  - name: audit")])
    assert await run() == [NOTE, "No changes: 1 stream matches the file."]
    assert set(await listed(admin)) == {"crm", "audit"}, "kept without --prune"
    deletion = f"- delete audit ({audit['id']})"
    assert await run("--prune", "--dry-run") == [
        deletion,
        NOTE,
        "Plan: 0 to create, 0 to update, 1 to delete; 1 unchanged (dry run: nothing changed).",
    ]
    assert set(await listed(admin)) == {"crm", "audit"}
    assert await run("--prune") == [
        deletion,
        NOTE,
        "Applied: 0 created, 0 updated, 1 deleted; 1 unchanged.",
    ]
    assert await listed(admin) == {"crm": rotated["crm"]}
    for out in outputs:
        for name, secret in SECRETS.items():
            assert secret not in out, f"the {name} secret was printed"


async def test_a_file_that_cannot_be_applied_is_one_error_line(
    api: tuple[TestClient[Any, Any], Api],
    tidings: Cli,
    streams_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unset variable stops apply before any change; a stream the API refuses stops it
    there, saying what was done before; an unreadable file names itself. Exit status 1."""
    _client, admin = api
    monkeypatch.delenv("WEBHOOK_TOKEN")
    code, out, err = await tidings("-f", str(streams_file))
    assert (code, out) == (1, "")
    assert err == (
        "error: streams[0].destination.configuration.webhook_authorization.token: "
        "the environment variable WEBHOOK_TOKEN is not set\n"
    )
    assert await listed(admin) == {}

    monkeypatch.setenv("WEBHOOK_TOKEN", SECRETS["bearer"])
    rewrite(
        streams_file,
        lambda t: t.replace("{timeout: 5s}", "{max_in_flight: 0}"),
    )
    code, out, err = await tidings("-f", str(streams_file))
    assert (code, out) == (1, "")
    assert err.startswith("error: streams[1] (audit): Input should be greater than or equal to 1")
    assert err.endswith("(field: delivery.max_in_flight)\n")
    assert await listed(admin) == {}, "the file is validated before any change"

    rewrite(
        streams_file,
        lambda t: t.replace("max_in_flight: 0", "max_in_flight: 2").replace(
            '"http://127.0.0.1:', '"https://10.0.0.1:'
        ),
    )
    code, out, err = await tidings("-f", str(streams_file))
    assert code == 1
    assert out.splitlines() == [CREATE_CRM]
    assert err.startswith("error: create audit: ")
    assert err.endswith(
        "(field: destination.configuration.webhook_endpoint) (1 of 2 changes made before)\n"
    )
    assert set(await listed(admin)) == {"crm"}

    code, out, err = await tidings("-f", str(streams_file.with_name("missing.yaml")))
    assert (code, out) == (1, "")
    assert err.startswith("error: -f: cannot read ")
    assert err.endswith("missing.yaml: No such file or directory\n")
