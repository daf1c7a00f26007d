"""A tiny run of ``bench/producer.py`` against the session broker, so the harness keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from admin.broker import LocalBroker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "producer.py"


def _bench(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bench_prints_one_json_object_with_positive_rates(kafka_broker: LocalBroker) -> None:
    """`bench/producer.py --events 2000 --json` prints one JSON object whose rates are positive
    and whose ratio is produce rate over encode rate."""
    out = _bench("--events", "2000", "--bootstrap", kafka_broker.bootstrap_servers, "--json")
    result = json.loads(out)
    assert result["events"] == 2000
    assert result["bootstrap"] == kafka_broker.bootstrap_servers
    assert result["encode_events_per_s"] > 0
    assert result["produce_events_per_s"] > 0
    assert result["mean_event_bytes"] > 100
    ratio = result["produce_events_per_s"] / result["encode_events_per_s"]
    assert abs(result["produce_to_encode_ratio"] - ratio) < 0.01


def test_bench_prints_a_table_by_default(kafka_broker: LocalBroker) -> None:
    """Without --json the output is a table with one row per stage."""
    out = _bench("--events", "200", "--bootstrap", kafka_broker.bootstrap_servers)
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if "  " in line}
    assert set(rows) >= {"stage", "encode only (ceiling)", "produce until acknowledged"}
    assert rows["encode only (ceiling)"][-1] == "1.00"
    assert float(rows["produce until acknowledged"][-1]) > 0


def test_events_sse_bench_reports_rate_and_latency(kafka_broker: LocalBroker) -> None:
    """A tiny `bench/events_sse.py --json` run: one connection read every event, and the
    paced phase measured every event through the Events API and the plain consumer."""
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH.with_name("events_sse.py")),
            *("--events", "300", "--rate", "100", "--seconds", "1"),
            *("--bootstrap", kafka_broker.bootstrap_servers, "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["events"] == 300
    assert figures["sse_events_per_s"] > 0
    assert figures["latency_events"] == 100
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert figures["plain_consumer_p99_ms"] > 0
