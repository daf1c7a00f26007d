"""Tests for producer.config: defaults, TOML file, environment and overrides, in that order."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from producer.config import DEFAULT_RETRY_SCHEDULE, Settings, load_settings
from producer.durations import parse_duration
from schemas import constants
from schemas.ids import is_stream_id

S = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIDINGS_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    """A settings file setting some options, and leaving others to the defaults."""
    path = tmp_path / "tidings.toml"
    path.write_text(
        'bootstrap_servers = "kafka-toml:9092"\n'
        'topic_prefix = "toml."\n'
        'tenant = "from-toml"\n'
        'lifecycle_retention = "3d"\n'
        'retry_schedule = ["10s", "1m", "1h"]\n'
        "lifecycle_partitions = 12\n"
        "\n"
        "[kafka]\n"
        '"client.id" = "toml-client"\n'
    )
    return path


def test_defaults_without_file_or_environment() -> None:
    """With nothing configured, every option has its documented default."""
    settings = load_settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.topic_prefix == constants.DEFAULT_TOPIC_PREFIX
    assert settings.lifecycle_topic == "tidings.lifecycle"
    assert settings.schema_registry_url is None
    assert settings.lifecycle_retention == timedelta(days=7)
    assert settings.retry_schedule == [parse_duration(d) for d in DEFAULT_RETRY_SCHEDULE]
    assert settings.kafka == {}


def test_toml_file_overrides_defaults_and_parses_durations(toml: Path) -> None:
    """Values in the TOML file replace the defaults, durations are parsed into timedeltas, and
    options the file leaves out keep their defaults."""
    settings = load_settings(toml)
    assert settings.bootstrap_servers == "kafka-toml:9092"
    assert settings.tenant == "from-toml"
    assert settings.lifecycle_partitions == 12
    assert settings.lifecycle_retention == timedelta(days=3)
    assert settings.retry_schedule == [10 * S, 60 * S, 3600 * S]
    assert settings.retry_topic(60 * S) == "toml.retry.1m"
    assert settings.kafka_config()["client.id"] == "toml-client"
    assert settings.internal_partitions == 6, "left out of the file: default"


def test_environment_overrides_the_toml_file(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TIDINGS_* variable beats the file's value for the same option; the file still supplies
    the rest. Lists and mappings are given as JSON; the librdkafka map is merged key by key."""
    monkeypatch.setenv("TIDINGS_TENANT", "from-env")
    monkeypatch.setenv("TIDINGS_LIFECYCLE_RETENTION", "12h")
    monkeypatch.setenv("TIDINGS_RETRY_SCHEDULE", '["1s", "2s"]')
    monkeypatch.setenv("TIDINGS_KAFKA", '{"linger.ms": "50", "client.id": "env-client"}')
    settings = load_settings(toml)
    assert settings.tenant == "from-env"
    assert settings.lifecycle_retention == timedelta(hours=12)
    assert settings.retry_schedule == [1 * S, 2 * S]
    assert settings.kafka == {"client.id": "env-client", "linger.ms": "50"}
    assert settings.bootstrap_servers == "kafka-toml:9092"


def test_explicit_overrides_beat_environment_and_file(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyword overrides to load_settings win over both the environment and the file."""
    monkeypatch.setenv("TIDINGS_TENANT", "from-env")
    settings = load_settings(toml, tenant="explicit", lifecycle_retention="90m")
    assert settings.tenant == "explicit"
    assert settings.lifecycle_retention == timedelta(minutes=90)


def test_tidings_config_variable_names_the_file(
    toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a path argument, TIDINGS_CONFIG names the settings file."""
    monkeypatch.setenv("TIDINGS_CONFIG", str(toml))
    assert load_settings().tenant == "from-toml"


def test_a_missing_file_is_an_error_not_silently_defaults(tmp_path: Path) -> None:
    """Naming a file that does not exist raises FileNotFoundError with the path."""
    with pytest.raises(FileNotFoundError, match=r"absent\.toml"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('retry_schedule = ["1m", "30s"]', "retry_schedule"),
        ('retry_schedule = ["60s", "1m"]', "retry_schedule"),
        ("retry_schedule = []", "retry_schedule"),
        ('lifecycle_retention = "forever"', "lifecycle_retention"),
        ("lifecycle_partitions = 0", "lifecycle_partitions"),
        ('topic_prefix = "bad prefix/"', "topic_prefix"),
        ("max_event_bytes = 10", "max_event_bytes"),
        ('unknown_option = "x"', "unknown_option"),
        ('events_stream_id = "stream-1"', "events_stream_id"),
    ],
)
def test_invalid_values_are_rejected_naming_the_option(
    tmp_path: Path, content: str, field: str
) -> None:
    """A bad value in the file fails validation at load, and the error names the option."""
    path = tmp_path / "bad.toml"
    path.write_text(content + "\n")
    with pytest.raises(ValidationError) as caught:
        load_settings(path)
    assert field in {str(error["loc"][0]) for error in caught.value.errors()}


def test_invalid_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad TIDINGS_* value fails validation the same way as a bad file value."""
    monkeypatch.setenv("TIDINGS_DLQ_RETENTION", "a while")
    with pytest.raises(ValidationError, match="dlq_retention"):
        load_settings()


def test_kafka_config_maps_security_options_and_passthrough_last() -> None:
    """kafka_config() renders connection and SASL settings as librdkafka properties, then the
    passthrough map, then per-call overrides."""
    settings = Settings(
        bootstrap_servers="a:1,b:2",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="s3cret",
        ssl_ca_location="/etc/ca.pem",
        kafka={"security.protocol": "SSL", "client.id": "x"},
    )
    config = settings.kafka_config(**{"client.id": "override"})
    assert config == {
        "bootstrap.servers": "a:1,b:2",
        "security.protocol": "SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "enable.metrics.push": False,
        "client.id": "override",
    }
    on = Settings(kafka={"enable.metrics.push": "true"}).kafka_config()
    assert on["enable.metrics.push"] == "true"  # the passthrough can turn telemetry back on


def test_the_sasl_password_never_appears_in_reprs_or_dumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SASL password is a secret: repr, str and JSON dumps of the settings hide it."""
    monkeypatch.setenv("TIDINGS_SASL_PASSWORD", "hunter2-secret")
    settings = load_settings()
    assert settings.kafka_config()["sasl.password"] == "hunter2-secret"
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2-secret" not in text


def test_the_events_api_stream_id_is_stable_per_tenant_and_topic_or_as_configured() -> None:
    """Derived ids agree across instances (replicas, restarts) and differ per tenant or topic
    prefix; a configured one wins."""
    one = Settings(tenant="acme").events_api_stream_id
    assert is_stream_id(one)
    assert one == Settings(tenant="acme").events_api_stream_id
    assert one != Settings(tenant="other").events_api_stream_id
    assert one != Settings(tenant="acme", topic_prefix="staging.").events_api_stream_id
    chosen = "est_0123456789abcdefABCDEF"
    assert Settings(events_stream_id=chosen).events_api_stream_id == chosen
