"""A replicated Kafka cluster on one machine: three KRaft nodes on 127.0.0.1, for fault tests.

Each node is a :class:`~admin.broker.LocalBroker` (broker and controller in one JVM: three
processes rather than six on a small machine) with ports and a data directory of its own;
the nodes share one cluster id and every node is a voter of the controller quorum, so any
one of them can be killed and the other two keep a majority. A killed node starts again
on its ports and data with ``node(i).start()``.

Tidings' own topics get their replication from whoever creates them
(``TIDINGS_REPLICATION_FACTOR``, ``TIDINGS_MIN_INSYNC_REPLICAS``): the cluster keeps
Kafka's default of one replica for topics created without one, and replicates only Kafka's
internal topics (consumer offsets, transactions) on every node.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    PartitionMetadata,
)

from admin.broker import BrokerError, LocalBroker, free_port, random_cluster_id

#: The JIT's first tier only: a test cluster lives a minute or two, too short for C2's
#: optimisations to repay their compiling. Measured on 2 cores, three nodes replicating
#: 20,000 events used 26 CPU seconds with C2 and 8 without (start-up: 14 and 7).
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1",)

#: A killed node is fenced, and its partitions led by another replica, once it missed
#: heartbeats for this long (Kafka's default is 9 s; a test waits for it).
SESSION_TIMEOUT_MS = 6000


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class LocalCluster:
    """``size`` combined broker+controller nodes (ids 1..size) on free ports under
    ``data_dir``; small heaps, since they share the machine with the system under test."""

    data_dir: Path
    size: int = 3
    heap: str = "384m"
    nodes: list[LocalBroker] = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        ports = _distinct_free_ports(2 * self.size)
        listeners, controllers = ports[: self.size], ports[self.size :]
        ids = range(1, self.size + 1)
        voters = ",".join(f"{i}@127.0.0.1:{port}" for i, port in zip(ids, controllers, strict=True))
        cluster_id = random_cluster_id()
        self.nodes = [
            LocalBroker(
                port=port,
                controller_port=controller,
                data_dir=self.data_dir / f"node-{node_id}",
                heap=self.heap,
                node_id=node_id,
                voters=voters,
                cluster_id=cluster_id,
                internal_replicas=self.size,
                properties={
                    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
                    "broker.heartbeat.interval.ms": "1000",
                },
                jvm_options=JVM_OPTIONS,
            )
            for node_id, port, controller in zip(ids, listeners, controllers, strict=True)
        ]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address: clients find the others through any of them."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> LocalBroker:
        """The node with this broker id (1..size)."""
        return self.nodes[node_id - 1]

    def start(self, timeout: float = 120.0) -> None:
        """Start every node that is not running and wait until each answers. The nodes are
        launched together: none answers before a majority of the quorum runs."""
        launched = {node.node_id: node.launch() for node in self.nodes if not node.is_running()}
        try:
            for node in self.nodes:
                node.wait_ready(timeout, launched.get(node.node_id))
        except BrokerError as exc:
            raise BrokerError(f"{exc}\n{self.tail_logs()}") from exc

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node at once (SIGTERM, SIGKILL after ``timeout``). Safe to call twice.
        One at a time, the last nodes would wait for a quorum that is already gone."""
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(lambda node: node.stop(timeout), self.nodes))

    def kill(self) -> None:
        """Kill every node at once (SIGKILL): the quick end of a cluster whose data is
        thrown away."""
        for node in self.nodes:
            node.kill()

    def _metadata(self, topic: str | None, timeout: float) -> ClusterMetadata:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        return admin.list_topics(topic, timeout=timeout)

    def partitions(self, topic: str, timeout: float = 10.0) -> dict[int, PartitionMetadata]:
        """The topic's partitions as the cluster's metadata describes them now (``leader``,
        ``replicas``, ``isrs`` are node ids; a leader of -1 means none)."""
        metadata = self._metadata(topic, timeout).topics[topic]
        if metadata.error is not None:
            raise BrokerError(f"{topic}: {metadata.error}")
        return dict(metadata.partitions)

    def controller(self, timeout: float = 10.0) -> int:
        """The id of the node the metadata names as controller."""
        return int(self._metadata(None, timeout).controller_id)

    def tail_logs(self, lines: int = 40) -> str:
        """The last lines of every node's log, for error messages."""
        return "\n".join(
            f"--- node {node.node_id} ({node.log_file}) ---\n{node.tail_log(lines)}"
            for node in self.nodes
        )
