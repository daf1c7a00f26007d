"""A tiny run of ``bench/e2e.py`` against the session broker, so the end-to-end harness keeps
working: producer → Kafka → dispatcher process → receiver process, figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from admin.broker import LocalBroker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"
KEYS = {
    "scenario",
    "deliveries_per_s",
    "ceiling_per_s",
    "ratio_to_ceiling",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_s_per_1k",
    "rss_mb",
}


def test_one_stream_run_delivers_every_event_and_prints_its_figures(
    kafka_broker: LocalBroker,
) -> None:
    """`bench/e2e.py --scenario 1-stream --events 300 --json` delivers all 300 events through a
    real dispatcher and prints one JSON object with positive rates and ordered percentiles."""
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--scenario",
            "1-stream",
            "--events",
            "300",
            "--rates",
            "1000",
            "--paced-seconds",
            "0.2",
            "--bootstrap",
            kafka_broker.bootstrap_servers,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    figures = json.loads(lines[0])
    assert figures.keys() >= KEYS
    assert figures["scenario"] == "1-stream"
    assert figures["events"] == 300
    assert figures["deliveries"] == 300
    assert figures["deliveries_per_s"] > 0
    assert figures["ceiling_per_s"] > 0
    ratio = figures["deliveries_per_s"] / figures["ceiling_per_s"]
    assert abs(figures["ratio_to_ceiling"] - ratio) < 0.01
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["cpu_s_per_1k"] > 0
    assert figures["rss_mb"] > 10
    budget = figures["extra"]["cpu_s_per_1k_by_process"]
    assert budget.keys() == {"dispatcher", "receiver", "producer and harness", "cores_busy"}
    assert budget["dispatcher"] > 0
    assert budget["producer and harness"] > 0
    assert budget["cores_busy"] > 0
    [paced] = figures["paced"]
    assert paced["offered_per_s"] == 1000
    assert paced["deliveries"] == paced["events"] == 200
