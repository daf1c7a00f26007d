"""The embedded development broker: real Apache Kafka from Maven Central, single-node KRaft.

The jars are fetched once with Maven into a cache outside the work tree
(``$TIDINGS_CACHE_DIR``, default ``~/.cache/tidings``), the storage directory is formatted
with ``kafka.tools.StorageTool``, and ``kafka.Kafka`` runs in the background as broker and
controller on 127.0.0.1. A pid file and the log live in the data directory. The same class
is one node of the replicated cluster in :mod:`admin.cluster`.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.3"
SLF4J_VERSION = "2.0.17"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tidings</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <!-- Kafka's POM leaves the logging binding out; without one the broker logs nothing. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{slf4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaConfig
        level: WARN
      - name: org.apache.kafka.common.config.AbstractConfig
        level: WARN
"""


# Brokers this process started: kept so that they can be reaped (and so that Popen does not
# warn about a child that is meant to outlive the command which started it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    """The embedded broker could not be fetched, formatted or started."""


def cache_dir() -> Path:
    """Where fetched jars are kept between runs (outside the work tree)."""
    return Path(os.environ.get("TIDINGS_CACHE_DIR", Path.home() / ".cache" / "tidings"))


def default_data_dir() -> Path:
    """Where the default broker keeps its data between runs."""
    return cache_dir() / "broker-data"


def kafka_libs() -> Path:
    """Fetch Kafka's jars with Maven on first use and return the directory holding them."""
    home = cache_dir() / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed to fetch Kafka's jars and was not found")
    staging = home.with_name(home.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "pom.xml").write_text(
        _POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION, slf4j=SLF4J_VERSION)
    )
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(staging / "pom.xml"),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={staging / 'libs'}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(f"fetching Kafka {KAFKA_VERSION} failed:\n{result.stdout}{result.stderr}")
    (staging / "log4j2.yaml").write_text(_LOG4J2)
    (staging / ".complete").write_text(KAFKA_VERSION)
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(home)
    except OSError:  # another process finished the same fetch first
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


#: Where free_port() looks: above the well-known and registered ports people run services on,
#: below the kernel's ephemeral range (read from /proc when it can be).
_LOWEST_FREE_PORT = 10_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _first_ephemeral_port() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, and the next one free too (a
    :class:`LocalBroker` takes it for its controller by default).

    Chosen at random below the kernel's ephemeral range: the port stays unused until whoever
    asked binds it, where a port the kernel hands out could meanwhile become the local end of
    any outgoing connection (a test suite makes thousands)."""
    highest = _first_ephemeral_port() - 2
    draw = random.SystemRandom()
    if highest > _LOWEST_FREE_PORT:
        for _ in range(200):
            port = draw.randrange(_LOWEST_FREE_PORT, highest)
            if _bindable(port) and _bindable(port + 1):
                return port
    with socket.socket() as sock:  # no room below the range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalBroker:
    """One KRaft node on 127.0.0.1 (broker and controller in one process): on its own by
    default, or one voter of a cluster when ``voters`` names the others."""

    port: int = 9092
    data_dir: Path = field(default_factory=default_data_dir)
    controller_port: int | None = None
    heap: str = "512m"
    node_id: int = 1
    #: ``controller.quorum.voters`` (``id@host:port,…``); None: this node alone.
    voters: str | None = None
    #: The id the storage is formatted with; every node of one cluster shares it.
    cluster_id: str | None = None
    #: Replicas of Kafka's own topics (consumer offsets, transactions): the cluster size.
    internal_replicas: int = 1
    #: Further ``server.properties`` entries, applied last.
    properties: dict[str, str] = field(default_factory=dict)
    #: Further JVM options (before the class name).
    jvm_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.controller_port is None:
            self.controller_port = self.port + 1
        if self.voters is None:
            self.voters = f"{self.node_id}@127.0.0.1:{self.controller_port}"

    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's own log (stdout and stderr of the JVM)."""
        return self.data_dir / "broker.log"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "kraft"

    def _properties(self) -> str:
        replicas = str(self.internal_replicas)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": str(self.voters),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            # A small machine: internal topics small, replicated only on a cluster, and no
            # waiting for more group members that will never come.
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": str(min(self.internal_replicas, 2)),
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.backoff.ms": "1000",
            **self.properties,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def pid(self) -> int | None:
        """The broker's process id when it is running, else None."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        try:  # a zombie left by our own start counts as stopped
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return pid
        return None if state == "Z" else pid

    def is_running(self) -> bool:
        """True when the process is alive and the listener accepts connections."""
        return self.pid() is not None and port_open(self.port)

    def _java(self, libs: Path, *args: str) -> list[str]:
        return [
            os.environ.get("JAVA", "java"),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={libs.parent / 'log4j2.yaml'}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def _format(self, libs: Path, properties: Path) -> None:
        if (self._log_dirs / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or random_cluster_id()
        result = subprocess.run(
            self._java(
                libs,
                "kafka.tools.StorageTool",
                "format",
                # One argument: a generated id may start with "-".
                f"--cluster-id={cluster_id}",
                "-c",
                str(properties),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(
                f"formatting {self._log_dirs} failed:\n{result.stdout}{result.stderr}"
            )

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker in the background and wait until it answers.

        Returns False when it was already running (not an error), True when started."""
        if self.is_running():
            return False
        process = self.launch()
        self.wait_ready(timeout, process)
        return True

    def launch(self) -> subprocess.Popen[bytes]:
        """Format the storage when new and start the JVM in the background, without waiting
        for it to answer (a cluster's nodes answer only once a majority of them runs)."""
        if port_open(self.port):
            raise BrokerError(f"port {self.port} is taken by another process")
        libs = kafka_libs()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self.data_dir / "server.properties"
        properties.write_text(self._properties())
        self._format(libs, properties)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(properties)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                close_fds=True,  # the daemon holds none of its starter's files or sockets
                start_new_session=True,  # survives the CLI that started it; Ctrl-C is ours
            )
        _CHILDREN[process.pid] = process
        self._pid_file.write_text(str(process.pid))
        return process

    def wait_ready(self, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
        """Wait until the broker serves metadata through the admin client."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with {process.returncode}:\n{self.tail_log()}"
                )
            if port_open(self.port):
                try:
                    metadata = admin.list_topics(timeout=2)
                except Exception:
                    metadata = None
                if metadata is not None and metadata.brokers:
                    return
            time.sleep(0.2)
        raise BrokerError(f"the broker did not answer within {timeout:.0f}s:\n{self.tail_log()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``). Safe to call twice.

        Returns False when it was not running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                _reap(pid)
                time.sleep(0.05)
        _reap(pid, timeout=10.0)  # a dead child of ours is a zombie until waited for
        self._pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), for fault tests."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                _reap(pid)
                time.sleep(0.05)
            _reap(pid, timeout=10.0)  # a dead child of ours is a zombie until waited for

    def tail_log(self, lines: int = 80) -> str:
        """The last lines of the broker log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"


def _reap(pid: int, timeout: float = 0.0) -> None:
    """Wait for a child of ours (up to ``timeout`` seconds) so it leaves no zombie. /proc
    shows a JVM's main thread as a zombie while its other threads still exit: the process
    can be waited for only once the last of them is gone, hence the timeout at the end."""
    child = _CHILDREN.get(pid)
    if child is None:
        return
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        return
    del _CHILDREN[pid]


def random_cluster_id() -> str:
    """A fresh KRaft cluster id: 16 random bytes in URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
