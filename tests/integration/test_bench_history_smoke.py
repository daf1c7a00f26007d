"""A tiny run of ``bench/history.py`` (SQLite only) against the session broker, so the
harness keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from admin.broker import LocalBroker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "history.py"


def test_the_history_bench_measures_a_small_sqlite_store(kafka_broker: LocalBroker) -> None:
    """2,000 attempts: every figure is there, the store holds them at under 1 KB each, and
    every query answered."""
    args = ["--attempts", "2000", "--queries", "3", "--no-postgres", "--json"]
    args += ["--fresh-rate", "500", "--fresh-seconds", "1"]
    result = subprocess.run(
        [sys.executable, str(BENCH), *args, "--bootstrap", kafka_broker.bootstrap_servers],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["store"] == "sqlite"
    assert figures["attempts"] == 2040
    assert figures["ingest_attempts_per_s"] > 0
    assert 0 < figures["bytes_per_attempt"] < 1024
    assert set(figures["query_ms"]) == {"first_page", "failed_only", "one_event", "stats_7d"}
    assert figures["freshness_max_s"] is not None
