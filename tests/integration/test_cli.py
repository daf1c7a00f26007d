"""The ``tidings`` command line against the real broker: ``topics ensure`` and ``emit``.

Commands run in-process through :func:`admin.cli.main`, configured the way an operator would:
``TIDINGS_*`` variables and ``--config`` TOML files.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from admin.broker import LocalBroker
from admin.cli import main
from kafka_testkit import read_topic, topic_size
from producer.config import Settings
from producer.producer import codec_for
from schemas import constants
from schemas.samples import sample_object


def _clear_tidings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The environment points the CLI at the session broker and the test's fresh topics."""
    _clear_tidings_env(monkeypatch)
    monkeypatch.setenv("TIDINGS_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("TIDINGS_TOPIC_PREFIX", settings.topic_prefix)
    return settings


def _retention_ms(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return int(configs["retention.ms"].value)


def test_topics_ensure_creates_every_topic_as_configured_and_is_idempotent(
    kafka_broker: LocalBroker,
    kafka_admin: AdminClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tidings topics ensure` creates each topic with the configured partitions and retention;
    a second run creates nothing and reports every topic as existing."""
    prefix = f"cli{uuid.uuid4().hex[:8]}."
    _clear_tidings_env(monkeypatch)
    monkeypatch.setenv("TIDINGS_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
    monkeypatch.setenv("TIDINGS_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("TIDINGS_LIFECYCLE_PARTITIONS", "4")
    monkeypatch.setenv("TIDINGS_LIFECYCLE_RETENTION", "3d")
    monkeypatch.setenv("TIDINGS_INTERNAL_PARTITIONS", "2")
    monkeypatch.setenv("TIDINGS_DLQ_RETENTION", "14d")
    monkeypatch.setenv("TIDINGS_RETRY_SCHEDULE", '["10s", "5m"]')

    assert main(["topics", "ensure"]) == 0
    first = capsys.readouterr().out.splitlines()
    day_ms = 86_400_000
    expected = {
        f"{prefix}lifecycle": (4, 3 * day_ms),
        f"{prefix}deliveries": (2, 7 * day_ms),
        f"{prefix}dlq": (2, 14 * day_ms),
        # A tier keeps its records at least as long as the lifecycle topic.
        f"{prefix}retry.10s": (2, 3 * day_ms),
        f"{prefix}retry.5m": (2, 3 * day_ms),
    }
    names = {line.split("\t")[0] for line in first}
    assert names == {*expected, f"{prefix}streams"}
    assert all(line.endswith("\tcreated") for line in first), first

    topics = kafka_admin.list_topics(timeout=10).topics
    for name, (partitions, retention) in expected.items():
        assert len(topics[name].partitions) == partitions, name
        assert _retention_ms(kafka_admin, name) == retention, name
    streams = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}streams")
    streams_config = kafka_admin.describe_configs([streams])[streams].result(timeout=10)
    assert streams_config["cleanup.policy"].value == "compact"

    assert main(["topics", "ensure"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert sorted(line.rsplit("\t", 1)[0] for line in second) == sorted(
        line.rsplit("\t", 1)[0] for line in first
    )
    assert all(line.endswith("\texists") for line in second), second


def test_emit_prints_the_id_of_an_event_found_on_the_lifecycle_topic(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tidings emit user.created --data '{...}'` prints an event id; the record with that id
    is on the lifecycle topic and carries the given user."""
    user = sample_object("user.created", seed=21)
    assert main(["emit", "user.created", "--data", json.dumps(user)]) == 0
    event_id = capsys.readouterr().out.strip()
    assert event_id.startswith(constants.EVENT_ID_PREFIX)

    (message,) = read_topic(cli_env, cli_env.lifecycle_topic, 1)
    event = codec_for(cli_env).decode(message.value())
    assert event.id == event_id
    assert event.type == "user.created"
    assert event.data.object.user_id == user["user_id"]
    assert message.key() == user["user_id"].encode()


def test_emit_takes_the_catalog_types_and_fills_their_timestamps(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tidings emit group.role.deleted` (one of the types added with Auth0's whole catalog)
    works like any other, and deleted_at left out is the event time; a group object whose
    kind and scope id disagree is refused naming the field."""
    revoke = sample_object("group.role.deleted", seed=4)
    del revoke["deleted_at"]
    assert main(["emit", "group.role.deleted", "--data", json.dumps(revoke)]) == 0
    event_id = capsys.readouterr().out.strip()
    (message,) = read_topic(cli_env, cli_env.lifecycle_topic, 1)
    event = codec_for(cli_env).decode(message.value())
    assert (event.id, event.type) == (event_id, "group.role.deleted")
    assert event.data.object.deleted_at == event.time
    assert event.data.object.group.id == revoke["group"]["id"]

    bad = {"id": "grp_1", "name": "g", "created_at": "2026-01-01T00:00:00Z", "type": "tenant"}
    assert main(["emit", "group.created", "--data", json.dumps({**bad, "connection_id": "c"})]) == 1
    assert "connection_id is not allowed for a tenant group" in capsys.readouterr().err


def test_emit_reads_data_and_previous_from_files(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--data @file` and `--previous @file` read the JSON from those files."""
    org = sample_object("organization.updated", seed=5)
    data, previous = tmp_path / "org.json", tmp_path / "before.json"
    data.write_text(json.dumps(org))
    previous.write_text(json.dumps({**org, "display_name": "Before"}))
    argv = ["emit", "organization.updated", "--data", f"@{data}", "--previous", f"@{previous}"]
    assert main(argv) == 0
    event_id = capsys.readouterr().out.strip()

    (message,) = read_topic(cli_env, cli_env.lifecycle_topic, 1)
    event = codec_for(cli_env).decode(message.value())
    assert event.id == event_id
    assert event.data.object.display_name == org["display_name"]
    assert event.data.previous_object.display_name == "Before"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ('{"email": "no-id@example.com"}', "data.object.user_id"),
        ('{"user_id": "auth0|1", "logins_count": "many"}', "data.object.logins_count"),
    ],
    ids=["missing", "wrong-type"],
)
def test_emit_with_invalid_data_exits_1_with_one_line_naming_the_field(
    cli_env: Settings, capsys: pytest.CaptureFixture[str], data: str, field: str
) -> None:
    """Invalid --data exits with status 1 and a single error line naming the field; nothing is
    produced."""
    assert main(["emit", "user.created", "--data", data]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("error: ")
    assert field in lines[0]
    assert topic_size(cli_env, cli_env.lifecycle_topic) == 0


def test_emit_with_unreadable_data_file_exits_1(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing @file or non-JSON data is a one-line error naming --data, exit status 1."""
    assert main(["emit", "user.created", "--data", f"@{tmp_path / 'absent.json'}"]) == 1
    assert capsys.readouterr().err.startswith("error: --data: cannot read")
    assert main(["emit", "user.created", "--data", "{not json"]) == 1
    assert capsys.readouterr().err.startswith("error: --data: not valid JSON")


def test_config_file_is_honoured_and_the_environment_overrides_it(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tidings --config file.toml emit ...` takes the broker and tenant from the file, while a
    TIDINGS_* variable beats the file's value for the same option."""
    _clear_tidings_env(monkeypatch)
    config = tmp_path / "tidings.toml"
    config.write_text(
        f'bootstrap_servers = "{settings.bootstrap_servers}"\n'
        'topic_prefix = "never-created."\n'
        'tenant = "from-toml"\n'
    )
    monkeypatch.setenv("TIDINGS_TOPIC_PREFIX", settings.topic_prefix)
    user = {"user_id": "auth0|toml"}
    assert main(["--config", str(config), "emit", "user.created", "--data", json.dumps(user)]) == 0
    event_id = capsys.readouterr().out.strip()

    (message,) = read_topic(settings, settings.lifecycle_topic, 1)
    event = codec_for(settings).decode(message.value())
    assert event.id == event_id
    assert event.tenant == "from-toml"


def test_missing_config_file_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --config path that does not exist is a one-line error, exit status 1."""
    _clear_tidings_env(monkeypatch)
    missing = tmp_path / "absent.toml"
    assert main(["--config", str(missing), "topics", "ensure"]) == 1
    assert capsys.readouterr().err.strip() == f"error: config file not found: {missing}"
