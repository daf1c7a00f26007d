"""A tiny run of ``bench/outbox.py`` against the session broker, so the harness keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from admin.broker import LocalBroker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "outbox.py"


def test_outbox_bench_reports_a_drain_rate_and_a_ceiling(kafka_broker: LocalBroker) -> None:
    """`bench/outbox.py --scenario throughput --events 500 --json` drains the backlog through
    a real relay and reports positive rates and their ratio."""
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--scenario",
            "throughput",
            "--events",
            "500",
            "--json",
            "--bootstrap",
            kafka_broker.bootstrap_servers,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)["throughput"]
    assert figures["events"] == 500
    assert figures["relay_events_per_s"] > 0
    assert figures["ceiling_events_per_s"] > 0
    ratio = figures["relay_events_per_s"] / figures["ceiling_events_per_s"]
    assert abs(figures["relay_to_ceiling"] - ratio) < 0.01
