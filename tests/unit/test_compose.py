"""docker-compose.yml and the Dockerfile describe a runnable deployment (no Docker engine
here, so the structure is checked: services, images, CLI commands, ports, health checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from admin.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_and_images(compose: dict[str, Any]) -> None:
    """Kafka from the official apache/kafka image in KRaft mode, one-shot topic setup, two
    dispatcher replicas and the admin service, all Tidings roles from one built image."""
    services = compose["services"]
    assert set(services) == {"kafka", "topics", "dispatcher", "admin"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["dispatcher"]["deploy"]["replicas"] == 2
    assert services["topics"]["restart"] == "no"
    images = {services[name]["image"] for name in ("topics", "dispatcher", "admin")}
    assert images == {"tidings:latest"}
    assert services["topics"]["build"] == "."
    assert 'ENTRYPOINT ["tidings"]' in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("service", ["topics", "dispatcher", "admin"])
def test_commands_exist_in_the_cli(compose: dict[str, Any], service: str) -> None:
    """Each service's command is a valid `tidings` command line."""
    command = compose["services"][service]["command"]
    args = build_parser().parse_args(command)
    assert callable(args.handler)


def test_ports_health_and_order(compose: dict[str, Any]) -> None:
    """The admin API is published on 8080; every long-running service has a health check;
    Tidings waits for a healthy Kafka and for the topics."""
    services = compose["services"]
    assert services["admin"]["ports"] == ["8080:8080"]
    assert "--port" in services["admin"]["command"]
    port = services["admin"]["command"][services["admin"]["command"].index("--port") + 1]
    assert port == "8080"
    for name in ("kafka", "dispatcher", "admin"):
        assert services[name]["healthcheck"]["test"], name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("dispatcher", "admin"):
        depends = services[name]["depends_on"]["topics"]["condition"]
        assert depends == "service_completed_successfully"
    env = services["dispatcher"]["environment"]
    assert env["TIDINGS_BOOTSTRAP_SERVERS"] == "kafka:9092"
