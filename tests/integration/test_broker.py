"""The embedded broker, driven through the ``tidings broker`` commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from admin.broker import LocalBroker, free_port
from admin.cli import main


def test_start_status_stop_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """start prints the address and is idempotent; status tells; stop stops; data is kept."""
    port = free_port()
    args = ["--port", str(port), "--data-dir", str(tmp_path)]
    try:
        assert main(["broker", "start", *args]) == 0
        assert capsys.readouterr().out.strip() == f"bootstrap.servers=127.0.0.1:{port}"
        assert LocalBroker(port=port, data_dir=tmp_path).is_running()

        assert main(["broker", "start", *args]) == 0, "starting a running broker is not an error"
        out = capsys.readouterr()
        assert "already running" in out.err
        assert out.out.strip() == f"bootstrap.servers=127.0.0.1:{port}"

        assert main(["broker", "status", *args]) == 0
        assert "running" in capsys.readouterr().out
        pid = LocalBroker(port=port, data_dir=tmp_path).pid()
        assert pid is not None
    finally:
        assert main(["broker", "stop", *args]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not Path(f"/proc/{pid}").exists(), "the stopped broker was reaped, not left a zombie"
    assert main(["broker", "status", *args]) == 3
    assert not LocalBroker(port=port, data_dir=tmp_path).is_running()
    assert (tmp_path / "kraft" / "meta.properties").exists(), "storage is kept between runs"
    assert main(["broker", "stop", *args]) == 0, "stopping a stopped broker is not an error"
    assert "not running" in capsys.readouterr().out


def test_session_broker_is_real_kafka(kafka_broker: LocalBroker) -> None:
    """The session fixture runs Apache Kafka itself (its log names the version we fetched)."""
    from admin.broker import KAFKA_VERSION

    assert kafka_broker.is_running()
    assert f"Kafka version: {KAFKA_VERSION}" in kafka_broker.log_file.read_text()
