"""The dispatcher under test, run as ``tidings dispatcher run`` in a child process, and metered.

CPU time and peak resident memory come straight from ``/proc/<pid>/stat`` and
``/proc/<pid>/status`` (Linux), so the harness needs nothing beyond the project. A profile is
taken with py-spy when it is installed (``pip install py-spy``): ``record --format raw``,
aggregated here by each sample's innermost frame ("own time").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from producer.config import Settings
from producer.durations import format_duration

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


class DispatcherProcess:
    """One dispatcher process for one benchmark scenario's settings."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env.update(
            {
                "TIDINGS_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
                "TIDINGS_TOPIC_PREFIX": settings.topic_prefix,
                "TIDINGS_RETRY_SCHEDULE": json.dumps(
                    [format_duration(d) for d in settings.retry_schedule]
                ),
                "TIDINGS_LIFECYCLE_PARTITIONS": str(settings.lifecycle_partitions),
                "TIDINGS_INTERNAL_PARTITIONS": str(settings.internal_partitions),
                "TIDINGS_DESTINATION_ALLOWLIST": ",".join(settings.destination_allowlist),
                # Several dispatchers (and test runs) share the machine: no fixed metrics port.
                "TIDINGS_METRICS_PORT": str(settings.metrics_port),
            }
        )
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id (after :meth:`start`)."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        """Start the process and wait until it logs ``dispatcher_started``."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "admin.cli",
                    "dispatcher",
                    "run",
                    "--shutdown-timeout",
                    "10",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the dispatcher exited: {self.tail()}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if b"dispatcher_started" in log.read():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the dispatcher did not start in {timeout}s: {self.tail()}")

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds used so far, all threads."""
        return process_cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        """The largest resident set so far (``VmHWM``), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait for the graceful exit (SIGKILL past ``timeout``). Safe twice."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 30) -> str:
        """The end of the dispatcher's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Profiler:
    """``py-spy record --format raw --gil`` attached to a running process until :meth:`stop`.

    Only samples of the thread holding the GIL are kept: py-spy counts a thread blocked in
    librdkafka (a consumer waiting for records, the producer's poll loop) as active, which
    would bury the Python work under time spent waiting."""

    def __init__(self, pid: int, output: Path, rate: int = 200) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(binary).exists():
            raise RuntimeError("py-spy is not installed: pip install py-spy")
        self.output = output
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                str(rate),
                "--nonblocking",
                "--gil",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        """Stop sampling; py-spy writes its output on SIGINT."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(30)


def own_time(raw_profile: Path, top: int = 15) -> list[tuple[str, int, float]]:
    """The ``top`` innermost frames of a raw py-spy profile: (frame, samples, share)."""
    leaves: Counter[str] = Counter()
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        leaves[_without_line(leaf)] += int(count)
    total = sum(leaves.values()) or 1
    return [(frame, n, n / total) for frame, n in leaves.most_common(top)]


def _without_line(frame: str) -> str:
    """``func (path/file.py:123)`` → ``func (file.py)``: one row per function, not per line."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(where).parts[-2:])})" if where else name
