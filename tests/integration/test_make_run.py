"""`tidings run` (what `make run` starts): the whole system comes up on its own broker,
deliveries reach the demo receiver within seconds, and Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from admin.broker import LocalBroker, free_port, port_open


def test_tidings_run_delivers_and_stops_cleanly(tmp_path: Path) -> None:
    """Within seconds the demo receiver logs deliveries and the dashboard answers; SIGINT
    stops the dispatcher, the admin service and the broker it started."""
    ports = {"broker": free_port(), "admin": free_port(), "receiver": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_ADMIN_TOKEN"] = "make-run-test-token-123456"
    env["TIDINGS_SECRETS_KEY_FILE"] = str(tmp_path / "secrets.key")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "admin.cli",
                "run",
                "--broker-port",
                str(ports["broker"]),
                "--admin-port",
                str(ports["admin"]),
                "--receiver-port",
                str(ports["receiver"]),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and log.read_text().count("receiver got") < 3:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert text.count("receiver got") >= 3, text
        assert f"dashboard: http://127.0.0.1:{ports['admin']}/" in text
        assert "admin token: make-run-test-token-123456" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/dashboard/") as page:
            assert b"Tidings" in page.read()
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(90)
    text = log.read_text()
    assert status == 0, text
    assert "dispatcher stopped (exit 0)" in text
    assert "admin stopped (exit 0)" in text
    assert "Kafka stopped" in text
    assert not LocalBroker(port=ports["broker"], data_dir=tmp_path / "data").is_running()
    assert not port_open(ports["admin"])
