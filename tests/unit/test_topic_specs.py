"""Tests for admin.topics.required_topics: replication and min.insync.replicas come from the
settings, on every topic, and impossible combinations are refused at load."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from admin.topics import required_topics
from producer.config import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIDINGS_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)


def test_unset_replication_leaves_it_to_the_cluster() -> None:
    """Without the settings, topics ask for the cluster's default replication and set no
    min.insync.replicas of their own."""
    specs = required_topics(load_settings())
    assert {spec.replication_factor for spec in specs} == {-1}
    assert not any("min.insync.replicas" in spec.config for spec in specs)


def test_replication_settings_reach_every_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    """TIDINGS_REPLICATION_FACTOR and TIDINGS_MIN_INSYNC_REPLICAS apply to every topic,
    alongside each topic's own configuration."""
    monkeypatch.setenv("TIDINGS_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("TIDINGS_MIN_INSYNC_REPLICAS", "2")
    settings = load_settings()
    specs = required_topics(settings)
    assert len(specs) == 4 + len(settings.retry_schedule)
    assert {spec.replication_factor for spec in specs} == {3}
    assert {spec.config["min.insync.replicas"] for spec in specs} == {"2"}
    (registry,) = [spec for spec in specs if spec.name == settings.streams_topic]
    assert registry.config["cleanup.policy"] == "compact"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"replication_factor": 2, "min_insync_replicas": 3}, "exceeds replication_factor"),
        ({"replication_factor": 0}, "replication_factor"),
        ({"min_insync_replicas": 0}, "min_insync_replicas"),
    ],
)
def test_impossible_replication_is_refused_at_load(overrides: dict[str, int], named: str) -> None:
    """More in-sync replicas than replicas (no write could succeed) or zero of either fails
    validation, and the message names the option."""
    with pytest.raises(ValidationError, match=named):
        load_settings(**overrides)
