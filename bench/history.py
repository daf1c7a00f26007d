"""The delivery history store at volume: ingest rate, restart time, query latency, memory and
disk per attempt, with the admin service run as its own process (``tidings admin serve``).

N attempts of one stream are written to ``tidings.deliveries`` in the dispatcher's own record
format (:func:`dispatcher.delivery_log.attempt_record`, 200 attempts a record as the
dispatcher batches them), spread over the last six days: 98% delivered at the first attempt,
2% failing once (with the receiver's answer) and then dead-lettered. Then, per store:

* ingest: the admin service starts on the backlog; attempts/s until ``/readyz`` (caught up);
* restart to ``/readyz`` with N attempts stored (SIGTERM, start again);
* query latency p50/p99 over ``--queries`` calls each: first page of the stream's
  deliveries, the failed-only filter, one event's history, 7 days of stats;
* RSS of the admin process (current and peak), and the file's bytes per attempt (SQLite);
* freshness: attempts offered at ``--fresh-rate``/s for 10 s, with a marker event each second
  timed from its write to the API showing it (max).

``--retention-minutes M`` runs a second phase instead: attempts offered at ``--fresh-rate``/s
for M minutes to a store keeping 2 minutes, sampling rows and file size every 15 s (they
level off). PostgreSQL needs Debian's server binaries (``make postgres``); ``--no-postgres``
skips it.

    python bench/history.py [--attempts 10000000] [--bootstrap HOST:PORT] [--queries 200]
                            [--no-postgres | --no-sqlite] [--retention-minutes 0] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path, where bench/producer.py would shadow
# the `producer` package: drop that entry before importing the project.
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

from confluent_kafka import Producer  # noqa: E402

from admin.broker import free_port  # noqa: E402
from admin.topics import ensure_all  # noqa: E402
from dispatcher.delivery_log import MAX_BATCH, attempt_record  # noqa: E402
from dispatcher.registry import RegistryWriter  # noqa: E402
from dispatcher.streams import Stream  # noqa: E402
from producer.config import Settings, load_settings  # noqa: E402

TOKEN = "bench-history-token-0123456789"
#: Share of events that fail once and are dead-lettered (two attempts each).
FAILING_EVERY = 50


def _sibling(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


embedded_broker = _sibling(BENCH / "producer.py", "bench_producer").embedded_broker


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Synth:
    """Writes attempts of one stream in the dispatcher's record format."""

    def __init__(self, settings: Settings, stream_id: str) -> None:
        self.settings = settings
        self.stream_id = stream_id
        self.producer = Producer(settings.kafka_config(**{"linger.ms": 20}))
        self.events = 0
        self.attempts = 0
        self.failed_ids: list[str] = []

    def _line(self, event_id: str, n: int, status: Any, at: datetime, origin: int) -> bytes:
        failing = status != "success"
        return attempt_record(
            stream_id=self.stream_id,
            event_id=event_id,
            event_type="user.created" if origin % 3 else "user.updated",
            attempt=n,
            status=status,
            http_status=503 if failing else 200,
            error="HTTP 503" if failing else None,
            duration_ms=12.5,
            at=at,
            next_attempt_at=at + timedelta(seconds=5) if status == "retrying" else None,
            event_time=at,
            purpose=None,
            origin_topic=self.settings.lifecycle_topic,
            origin_partition=origin % 6,
            origin_offset=origin,
            response_body='{"error":"maintenance"}' if failing else None,
        )

    def write(self, count: int, start: datetime, end: datetime) -> None:
        """``count`` events with first attempts evenly spread over ``[start, end)``."""
        step = (end - start) / max(count, 1)
        lines: list[bytes] = []
        for i in range(count):
            n = self.events + i
            event_id = f"evt_{n:022d}"
            at = start + step * i
            if n % FAILING_EVERY == FAILING_EVERY - 1:
                lines.append(self._line(event_id, 1, "retrying", at, n))
                lines.append(self._line(event_id, 2, "failed", at + timedelta(seconds=5), n))
                self.failed_ids.append(event_id)
            else:
                lines.append(self._line(event_id, 1, "success", at, n))
            if len(lines) >= MAX_BATCH:
                self._flush(lines)
        self._flush(lines)
        self.events += count

    def _flush(self, lines: list[bytes]) -> None:
        if not lines:
            return
        value = b"\n".join(lines)
        while True:
            try:
                self.producer.produce(self.settings.deliveries_topic, value, self.stream_id)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)
        self.attempts += len(lines)
        lines.clear()

    def flush(self) -> None:
        """Wait until every record is acknowledged."""
        assert self.producer.flush(120) == 0


class Service:
    """``tidings admin serve`` as its own process."""

    def __init__(self, settings: Settings, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        environment.update(
            TIDINGS_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
            TIDINGS_TOPIC_PREFIX=settings.topic_prefix,
            TIDINGS_ADMIN_TOKEN=TOKEN,
            TIDINGS_LOG_LEVEL="WARNING",
            **env,
        )
        tidings = str(Path(sys.executable).with_name("tidings"))
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [tidings, "admin", "serve", "--port", str(self.port)],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str) -> tuple[int, Any]:
        """Status and JSON body of a GET."""
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def wait_ready(self, timeout: float) -> float:
        """Seconds until ``/readyz`` answers 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process.poll() is None, "the admin service exited"
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError("the admin service never became ready")

    def rss_mb(self) -> tuple[float, float]:
        """Current and peak resident memory (MB)."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)


@dataclass
class Figures:
    """One store's measurements."""

    store: str
    attempts: int
    ingest_attempts_per_s: float
    #: Events stored per second between 10% and 90% of the backlog, times attempts per event.
    steady_attempts_per_s: float | None = None
    restart_to_ready_s: float | None = None
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    bytes_per_attempt: float | None = None
    query_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    freshness_max_s: float | None = None
    retention: list[dict[str, float]] = field(default_factory=list)


def _time_queries(service: Service, stream_id: str, failed_id: str, count: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    week = (now - timedelta(days=7)).isoformat().replace("+00:00", "Z")
    base = f"/v1/event-streams/{stream_id}"
    queries = {
        "first_page": f"{base}/deliveries",
        "failed_only": f"{base}/deliveries?statuses=failed",
        "one_event": f"{base}/deliveries/{failed_id}",
        "stats_7d": f"{base}/stats?date_from={week}",
    }
    figures: dict[str, Any] = {}
    for name, path in queries.items():
        status, _body = service.get(path)
        assert status == 200, (name, status)
        took = []
        for _ in range(count):
            started = time.perf_counter()
            service.get(path)
            took.append((time.perf_counter() - started) * 1000)
        figures[name] = {"p50": _percentile(took, 0.5), "p99": _percentile(took, 0.99)}
    return figures


def _freshness(service: Service, synth: Synth, rate: int, seconds: int = 10) -> float:
    """Offer ``rate`` attempts/s; the slowest marker's write-to-visible time."""
    stop = threading.Event()

    def offer() -> None:
        while not stop.is_set():
            tick = time.monotonic()
            now = datetime.now(UTC)
            synth.write(rate // 10, now, now + timedelta(milliseconds=100))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))

    worker = threading.Thread(target=offer, daemon=True)
    worker.start()
    worst = 0.0
    marker = Synth(synth.settings, synth.stream_id)
    marker.events = 10**15
    try:
        for _ in range(seconds):
            now = datetime.now(UTC)
            event_id = f"evt_{marker.events:022d}"
            marker.write(1, now, now)
            marker.flush()
            written = time.monotonic()
            while (
                service.get(f"/v1/event-streams/{synth.stream_id}/deliveries/{event_id}")[0] != 200
            ):
                time.sleep(0.01)
            worst = max(worst, time.monotonic() - written)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - written)))
    finally:
        stop.set()
        worker.join()
        synth.flush()
    return worst


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if ".bad-" not in p.name)


def run_store(
    name: str,
    settings: Settings,
    stream_id: str,
    synth: Synth,
    env: dict[str, str],
    workdir: Path,
    options: argparse.Namespace,
) -> Figures:
    """Ingest the backlog into a fresh store and measure it."""
    log = workdir / f"admin-{name}.log"
    service = Service(settings, log, env)
    samples: list[tuple[float, int]] = []
    sampling = threading.Thread(
        target=_sample_rows, args=(env, samples, service, synth.events), daemon=True
    )
    sampling.start()
    try:
        took = service.wait_ready(3600)
        figures = Figures(name, synth.attempts, synth.attempts / took)
        steady = _steady_rate(samples, synth.events)
        if steady is not None:
            figures.steady_attempts_per_s = steady * synth.attempts / synth.events
        figures.query_ms = _time_queries(service, stream_id, synth.failed_ids[-1], options.queries)
        if name == "sqlite":
            service.stop()
            service = Service(settings, log, env)
            figures.restart_to_ready_s = service.wait_ready(600)
            path = Path(env["TIDINGS_HISTORY_PATH"])
            figures.bytes_per_attempt = _file_bytes(path) / synth.attempts
            figures.freshness_max_s = _freshness(
                service, synth, options.fresh_rate, options.fresh_seconds
            )
        else:
            figures.bytes_per_attempt = _postgres_bytes(env["TIDINGS_HISTORY_URL"]) / synth.attempts
        figures.rss_mb, figures.peak_rss_mb = service.rss_mb()
        return figures
    finally:
        service.stop()


def _count_events(env: dict[str, str]) -> int:
    if "TIDINGS_HISTORY_URL" in env:
        import psycopg

        with psycopg.connect(env["TIDINGS_HISTORY_URL"]) as conn:
            row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
    else:
        with contextlib.closing(sqlite3.connect(env["TIDINGS_HISTORY_PATH"], timeout=30)) as conn:
            row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def _sample_rows(
    env: dict[str, str], samples: list[tuple[float, int]], service: Service, events: int
) -> None:
    """Events stored, once a second, until all ``events`` are (or the service is gone)."""
    while service.process.poll() is None:
        with contextlib.suppress(Exception):
            samples.append((time.monotonic(), _count_events(env)))
            if samples[-1][1] >= events:
                return
        time.sleep(1.0)


def _steady_rate(samples: list[tuple[float, int]], events: int) -> float | None:
    """Events/s stored between 10% and 90% of the backlog (start-up and the tail left out)."""
    inside = [(t, n) for t, n in samples if 0.1 * events <= n <= 0.9 * events]
    if len(inside) < 2:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def _postgres_bytes(url: str) -> int:
    """The history tables' size on disk, indexes included."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()
    return int(row[0]) if row and row[0] else 0


def run_retention(
    settings: Settings, stream_id: str, workdir: Path, options: argparse.Namespace
) -> Figures:
    """Attempts offered for a while to a store keeping 2 minutes: rows and size over time."""
    path = workdir / "retention.sqlite3"
    env = {"TIDINGS_HISTORY_PATH": str(path), "TIDINGS_DELIVERIES_RETENTION": "2m"}
    service = Service(settings, workdir / "admin-retention.log", env)
    synth = Synth(settings, stream_id)
    figures = Figures("sqlite-retention-2m", 0, 0.0)
    try:
        service.wait_ready(120)
        started = time.monotonic()
        next_sample = started
        while time.monotonic() - started < options.retention_minutes * 60:
            tick = time.monotonic()
            now = datetime.now(UTC)
            synth.write(options.fresh_rate // 10, now, now + timedelta(milliseconds=100))
            if tick >= next_sample:
                with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
                    rows = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                sample = {
                    "minute": round((tick - started) / 60, 2),
                    "rows": rows,
                    "file_mb": round(_file_bytes(path) / 1e6, 1),
                    "rss_mb": round(service.rss_mb()[0], 1),
                }
                figures.retention.append(sample)
                print(json.dumps(sample), file=sys.stderr, flush=True)
                next_sample += 15
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        synth.flush()
        figures.attempts = synth.attempts
        figures.rss_mb, figures.peak_rss_mb = service.rss_mb()
        return figures
    finally:
        service.stop()


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (Debian's binaries) and a database on it."""
    sys.path.append(str(ROOT / "tests"))
    from postgres_kit import running_postgres

    servers = running_postgres()
    server = next(servers)
    try:
        yield server.create_database()
    finally:
        with contextlib.suppress(StopIteration):
            next(servers)


def render(results: Sequence[Figures], header: str) -> str:
    """The table the README shows."""
    lines = [header, ""]
    lines.append(
        "| store | attempts | ingest/s | restart→ready | RSS (peak) MB | B/attempt |"
        " first page p50/p99 ms | failed-only | one event | 7-day stats | freshness |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for f in results:
        q = {k: f"{v['p50']:.1f}/{v['p99']:.1f}" for k, v in f.query_ms.items()}
        lines.append(
            f"| {f.store} | {f.attempts:,} | {f.ingest_attempts_per_s:,.0f} "
            f"({f.steady_attempts_per_s or 0:,.0f}) | "
            f"{f'{f.restart_to_ready_s:.1f} s' if f.restart_to_ready_s is not None else '-'} | "
            f"{f.rss_mb:.0f} ({f.peak_rss_mb:.0f}) | "
            f"{f'{f.bytes_per_attempt:.0f}' if f.bytes_per_attempt is not None else '-'} | "
            f"{q.get('first_page', '-')} | {q.get('failed_only', '-')} | "
            f"{q.get('one_event', '-')} | {q.get('stats_7d', '-')} | "
            f"{f'{f.freshness_max_s:.2f} s' if f.freshness_max_s is not None else '-'} |"
        )
        for sample in f.retention:
            lines.append(
                f"|   minute {sample['minute']} | rows {sample['rows']:,} | "
                f"file {sample['file_mb']} MB | RSS {sample['rss_mb']} MB |||||||||"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=10_000_000)
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--queries", type=int, default=200, help="calls per query timed")
    parser.add_argument("--fresh-rate", type=int, default=5000, help="attempts/s offered live")
    parser.add_argument("--fresh-seconds", type=int, default=10, help="markers, one a second")
    parser.add_argument("--retention-minutes", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="one JSON object per store")
    args = parser.parse_args(argv)
    results: list[Figures] = []
    with (
        tempfile.TemporaryDirectory(prefix="tidings-history-bench-") as workdir,
        embedded_broker(args.bootstrap) as (servers, _pid),
    ):
        settings = load_settings(
            bootstrap_servers=servers, topic_prefix=f"hist{uuid.uuid4().hex[:8]}."
        )
        ensure_all(settings)
        stream = Stream.model_validate(
            {
                "name": "bench history",
                "subscriptions": [{"event_type": "*"}],
                "destination": {
                    "type": "webhook",
                    "configuration": {"webhook_endpoint": "https://example.com/hook"},
                },
            }
        )
        RegistryWriter(settings).put(stream)
        work = Path(workdir)
        if args.retention_minutes:
            results.append(run_retention(settings, stream.id, work, args))
        else:
            synth = Synth(settings, stream.id)
            now = datetime.now(UTC)
            synth.write(args.attempts, now - timedelta(days=6), now - timedelta(minutes=1))
            synth.flush()
            sqlite_env = {"TIDINGS_HISTORY_PATH": str(work / "history.sqlite3")}
            if not args.no_sqlite:
                results.append(
                    run_store("sqlite", settings, stream.id, synth, sqlite_env, work, args)
                )
            if not args.no_postgres:
                with postgres_url() as url:
                    pg_env = {"TIDINGS_HISTORY_URL": url}
                    results.append(
                        run_store("postgresql", settings, stream.id, synth, pg_env, work, args)
                    )
        for figures in results:
            if args.json:
                print(json.dumps(asdict(figures)), flush=True)
    if not args.json:
        header = f"Tidings history store: {os.cpu_count()} cores; Python {sys.version.split()[0]}"
        print(render(results, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
