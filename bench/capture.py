"""Change capture's figures: throughput of a bulk load, and lag at a steady rate of writes.

A private PostgreSQL server and the embedded Kafka broker (unless ``--bootstrap``) start on
free ports, as in bench/outbox.py (whose helpers this script shares); a real ``tidings
capture`` process reads the users table of the capture tests (tests/outbox_kit.py).

* ``throughput``: one ``COPY`` of ``--users`` rows commits; the clock runs from its commit to
  the broker's append time of the last event. The ceiling is the same records produced
  straight from memory with the same producer settings.
* ``lag``: a writer commits single-row INSERTs at ``--rate`` per second for ``--seconds``
  (``synchronous_commit=on``: logical decoding sees a commit once its WAL is flushed); lag is
  the writer's clock when COMMIT returned → the broker's append time of the event.

    python bench/capture.py [--scenario all|throughput|lag] [--users 20000] [--rate 1000]
        [--seconds 10] [--bootstrap HOST:PORT] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent / "tests"))

import psycopg  # noqa: E402

from capture_kit import (  # noqa: E402
    CAPTURE_MAPPING,
    CAPTURE_USERS_DDL,
    capture_process,
    copy_users_script,
    drop_slot,
    psql,
    wait_for_slot,
)
from postgres_kit import PostgresServer, running_postgres  # noqa: E402

SLOT = "tidings_capture"


def _outbox_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_outbox", BENCH / "outbox.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


shared = _outbox_bench()


def _started_capture(pg: PostgresServer, bootstrap: str, work: Path, name: str) -> Any:
    dsn = pg.create_database()
    psql(dsn, CAPTURE_USERS_DDL)
    settings = shared.fresh_settings(bootstrap)
    mapping = work / "mapping.yaml"
    mapping.write_text(CAPTURE_MAPPING)
    capture = capture_process(dsn, settings, mapping, work / f"capture-{name}.log").start()
    wait_for_slot(dsn, SLOT, capture)
    return dsn, settings, capture


def key_of(message: Any) -> str:
    """The record's key: the user id."""
    return str(message.key().decode())


def scenario_throughput(
    pg: PostgresServer, bootstrap: str, users: int, work: Path
) -> dict[str, Any]:
    """Bulk COPY → every event appended, against the plain-producer ceiling."""
    dsn, settings, capture = _started_capture(pg, bootstrap, work, "throughput")
    clock = shared.ArrivalClock(settings, key_of)
    try:
        psql(dsn, copy_users_script(1, users))
        committed = time.time()
        deadline = time.monotonic() + 300
        while len(clock.arrived) < users and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        capture.terminate()
        clock.stop()
        drop_slot(dsn)
    seconds = max(clock.arrived.values()) - committed
    records = [(b"x" * 400, f"db|{n}") for n in range(users)]
    ceiling = shared.produce_plain(shared.fresh_settings(bootstrap), records)
    return {
        "users": users,
        "arrived": len(clock.arrived),
        "capture_events_per_s": round(users / seconds),
        "ceiling_events_per_s": round(users / ceiling),
        "capture_to_ceiling": round(ceiling / seconds, 3),
    }


def scenario_lag(
    pg: PostgresServer, bootstrap: str, rate: float, seconds: float, work: Path
) -> dict[str, Any]:
    """Commit → append lag of single-row inserts at a steady rate."""
    dsn, settings, capture = _started_capture(pg, bootstrap, work, "lag")
    clock = shared.ArrivalClock(settings, key_of)
    committed: dict[str, float] = {}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")
            started = time.monotonic()
            for n in range(int(rate * seconds)):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                conn.execute(
                    "INSERT INTO users (id, email) VALUES (%s, %s)", (n, f"u{n}@x.example")
                )
                committed[f"db|{n}"] = time.time()
            written = time.monotonic() - started
        deadline = time.monotonic() + 60
        while not set(committed) <= set(clock.arrived) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        capture.terminate()
        clock.stop()
        drop_slot(dsn)
    lags = [(clock.arrived[k] - t) * 1000 for k, t in committed.items() if k in clock.arrived]
    return {
        "target_rate": rate,
        "achieved_rate": round(len(committed) / written),
        "events": len(lags),
        "missing": len(committed) - len(lags),
        "p50_ms": round(shared.percentile(lags, 0.50), 1),
        "p99_ms": round(shared.percentile(lags, 0.99), 1),
        "max_ms": round(max(lags), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios and print them (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="all", choices=["all", "throughput", "lag"])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    chosen = {"throughput", "lag"} if args.scenario == "all" else {args.scenario}
    results: dict[str, Any] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="tidings-bench-capture-") as work_dir:
        work = Path(work_dir)
        with shared.kafka(args.bootstrap) as bootstrap:
            if not args.bootstrap:
                shared.warm_up(bootstrap)
            for pg in running_postgres():
                if "throughput" in chosen:
                    results["throughput"] = scenario_throughput(pg, bootstrap, args.users, work)
                if "lag" in chosen:
                    results["lag"] = scenario_lag(pg, bootstrap, args.rate, args.seconds, work)
    if args.json:
        print(json.dumps(results))
    else:
        for name, figures in results.items():
            print(f"{name}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
