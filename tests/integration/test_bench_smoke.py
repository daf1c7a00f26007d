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
