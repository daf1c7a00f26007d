"""Tidings configuration: one typed model, loaded defaults -> TOML file -> ``TIDINGS_*`` env.

Every option is documented once, on the field that defines it. Pass the loaded
:class:`Settings` explicitly; nothing reads the environment behind your back.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from producer.durations import Duration, format_duration
from schemas import constants
from schemas.ids import derived_stream_id, is_stream_id

DEFAULT_RETRY_SCHEDULE = ("5s", "30s", "2m", "10m", "1h", "6h", "24h")

# Producers' record batches are kept to this size (librdkafka's default is 1 MB). A consumer
# fetch returns a partition's first batch whole whatever its fetch limits, so the batch size
# bounds what each of the dispatcher's per-stream consumers prefetches: with 1 MB batches a
# hundred consumers held ~250 MB of prefetched records.
RECORD_BATCH_BYTES = 32 * 1024


class Settings(BaseSettings):
    """All of Tidings' settings. Environment variables are the field names upper-cased with the
    ``TIDINGS_`` prefix (``TIDINGS_BOOTSTRAP_SERVERS``); nested librdkafka options go in
    ``TIDINGS_KAFKA`` as a JSON object."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="forbid")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    topic_prefix: str = Field(
        constants.DEFAULT_TOPIC_PREFIX,
        description="Prefix of every topic and consumer group Tidings owns.",
        pattern=r"^[A-Za-z0-9._-]*$",
    )
    tenant: str = Field(
        "default", min_length=1, description="Tenant name rendered as the events' a0tenant."
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry; when set, records use the Confluent "
        "wire format, otherwise Avro single-object encoding against the packaged schemas.",
    )
    security_protocol: str = Field(
        "PLAINTEXT",
        description="librdkafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.",
    )
    sasl_mechanism: str | None = Field(
        None, description="librdkafka sasl.mechanism, e.g. SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(None, description="SASL username.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    ssl_ca_location: str | None = Field(None, description="CA bundle for SSL to the brokers.")
    kafka: dict[str, str] = Field(
        default_factory=dict,
        description="Further librdkafka properties passed through unchanged (applied last).",
    )
    lifecycle_partitions: int = Field(6, ge=1, description="Partitions of the lifecycle topic.")
    lifecycle_retention: Duration = Field(
        timedelta(days=7),
        description="Retention of the lifecycle topic: how far back streams can replay.",
    )
    internal_partitions: int = Field(
        6, ge=1, description="Partitions of the retry-tier, deliveries and dead-letter topics."
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replicas of every topic `tidings topics ensure` creates (3 on a production "
        "cluster); unset: the cluster's default.replication.factor.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of every topic `tidings topics ensure` creates: how "
        "many replicas must hold a record before an acks=all write (every Tidings producer) "
        "succeeds; 2 with 3 replicas survives the loss of any one broker without losing an "
        "acknowledged event. Unset: the cluster's default. At most replication_factor.",
    )
    dlq_retention: Duration = Field(
        timedelta(days=30), description="Retention of the dead-letter topic."
    )
    deliveries_retention: Duration = Field(
        timedelta(days=7),
        description="How long delivery history and stats are kept: the delivery log topic's "
        "retention, and the age past which the admin service's history store deletes an "
        "event (by its first attempt) and its stats.",
    )
    history_path: str = Field(
        "~/.local/share/tidings/history.sqlite3",
        description="The admin service's SQLite history file (WAL mode; rebuilt from Kafka "
        "when missing or unreadable). Unused when history_url is set.",
    )
    history_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user:pass@host/db) of a history store shared "
        "by several admin replicas; unset: the SQLite file at history_path.",
    )
    retry_schedule: list[Duration] = Field(
        default_factory=lambda: [*DEFAULT_RETRY_SCHEDULE],  # type: ignore[arg-type]
        min_length=1,
        description="Delays of the retry tiers, in order; each tier is its own topic.",
    )
    destination_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or CIDRs webhooks may reach although they are private, loopback or "
        "link-local, and may call over plain http (comma-separated in the environment).",
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key that encrypts webhook secrets in the registry topic (generate "
        "one with `tidings secrets generate-key`); unset: a local key file is used.",
    )
    secrets_previous_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Older keys that still decrypt during a rotation (comma-separated).",
    )
    secrets_key_file: str = Field(
        "~/.config/tidings/secrets.key",
        description="Key file created and used when secrets_key is unset (single machine).",
    )
    log_level: str = Field(
        "INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR|debug|info|warning|error)$",
        description="Log level of the services.",
    )
    metrics_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="Port of the dispatcher's /metrics and /healthz (0: not served).",
    )
    metrics_host: str = Field("127.0.0.1", description="Address /metrics listens on.")
    max_event_bytes: int = Field(
        1_000_000, ge=1024, description="Largest encoded event the producer accepts."
    )
    producer_buffer_messages: int = Field(
        100_000,
        ge=1,
        description="Events the producer buffers before emit() blocks (back-pressure).",
    )
    max_in_flight_total: int = Field(
        256,
        ge=1,
        description="Deliveries a dispatcher process has in flight across all its streams, "
        "beyond the first few of each stream (which never wait for others): bounds its memory "
        "however many streams it serves. Each stream's own max_in_flight still applies.",
    )
    events_max_connection: Duration = Field(
        timedelta(minutes=10),
        description="How long the Events API (GET /v1/events) keeps one connection open before "
        "closing it; clients reconnect with Last-Event-ID and lose nothing.",
    )
    events_heartbeat: Duration = Field(
        timedelta(seconds=15),
        description="How often an idle Events API connection gets a heartbeat (or, when "
        "filtered-out records moved it on, an offset-only event with the current cursor).",
    )
    events_max_connections_per_token: int = Field(
        5, ge=1, description="Concurrent Events API connections one token may hold (429 past it)."
    )
    events_stream_id: str | None = Field(
        None,
        description="The a0stream of events read through the Events API (Auth0's catalog "
        "requires one on every event). Default: an est_ id derived from the tenant and the "
        "lifecycle topic, the same on every replica and restart.",
    )

    @field_validator("events_stream_id")
    @classmethod
    def _stream_id(cls, value: str | None) -> str | None:
        if value is not None and not is_stream_id(value):
            raise ValueError("must be a stream id: est_ and 22 letters or digits")
        return value

    @field_validator("history_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("destination_allowlist", "secrets_previous_keys", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_increases(cls, value: list[timedelta]) -> list[timedelta]:
        if any(later <= earlier for earlier, later in itertools.pairwise(value)):
            raise ValueError("retry delays must strictly increase")
        if len({format_duration(v) for v in value}) != len(value):
            raise ValueError("retry delays must have distinct names")
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if (
            self.replication_factor is not None
            and self.min_insync_replicas is not None
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) exceeds replication_factor "
                f"({self.replication_factor}): no write could ever succeed"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values win, then the environment, then the TOML file, then defaults."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    # Topic names ---------------------------------------------------------------------------
    def topic(self, suffix: str) -> str:
        """The full name of one of Tidings' topics, e.g. ``topic(constants.DLQ_TOPIC)``."""
        return f"{self.topic_prefix}{suffix}"

    @property
    def lifecycle_topic(self) -> str:
        """Where producers write lifecycle events."""
        return self.topic(constants.LIFECYCLE_TOPIC)

    @property
    def events_api_stream_id(self) -> str:
        """The ``a0stream`` the Events API gives the events it serves."""
        seed = f"events-api\0{self.tenant}\0{self.lifecycle_topic}".encode()
        return self.events_stream_id or derived_stream_id(seed)

    @property
    def streams_topic(self) -> str:
        """The compacted registry of streams."""
        return self.topic(constants.STREAMS_TOPIC)

    @property
    def deliveries_topic(self) -> str:
        """The delivery log: each record holds attempts of one stream, one per line."""
        return self.topic(constants.DELIVERIES_TOPIC)

    @property
    def dlq_topic(self) -> str:
        """The dead-letter topic."""
        return self.topic(constants.DLQ_TOPIC)

    def retry_topic(self, delay: timedelta) -> str:
        """The retry tier topic for one delay, e.g. ``tidings.retry.30s``."""
        return self.topic(constants.RETRY_TOPIC_PREFIX + format_duration(delay))

    @property
    def max_record_bytes(self) -> int:
        """The largest record Tidings writes: an event at the size limit plus the headers
        of a retry or dead-letter record. Producers and topics allow this much."""
        return max(self.max_event_bytes + 64 * 1024, 1_048_576)

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka properties for any client: connection, security, passthrough, overrides."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            # KIP-714 client-metrics push (on by default since librdkafka 2.5) keeps latency
            # histograms for every broker connection of every client, about 0.4 MB per
            # client: 40 MB for a dispatcher of 100 streams. Brokers collect these only with
            # a metrics plugin; TIDINGS_KAFKA can turn it back on.
            "enable.metrics.push": False,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        config.update(self.kafka)
        config.update(overrides)
        return config


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings: defaults, then the TOML file (argument or ``TIDINGS_CONFIG``), then
    ``TIDINGS_*`` variables, then ``overrides``."""
    path = config_file or os.environ.get("TIDINGS_CONFIG")
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"config file not found: {path}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    return _FromFile(**overrides)
