"""A local Apache Kafka cluster (one node, or three for failover tests) as an async context manager.

::

    async with KafkaCluster.single() as cluster:
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers)

    async with KafkaCluster.three_nodes() as cluster:
        await cluster.kill_node(await cluster.partition_leader("t", 0))
        ...
        await cluster.restart_node(victim)

Starting: the classpath is fetched once (``kafka_libs``), every node is formatted (in parallel,
once per data dir) and all nodes are launched at once, since a quorum of three cannot elect
alone. ``start`` returns when every node answers metadata listing every broker, or raises
BrokerSetupError with the failing node's log tail after stopping what it started.
Stopping sends SIGTERM to all nodes together and SIGKILLs stragglers after a deadline. A
cluster without ``data_dir`` lives in a temporary folder removed on stop.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from agent_events.agent_runtime.errors import BrokerSetupError, ConfigError
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.broker._process import free_ports, make_temp_dir, remove_temp_dir
from agent_events.broker.kafka_config import NodeSpec, new_cluster_id
from agent_events.broker.kafka_libs import DEFAULT_KAFKA_VERSION, ensure_kafka_libs
from agent_events.broker.kafka_node import KafkaNode, read_cluster_id
from agent_events.broker.tools import find_java

__all__ = ["KafkaCluster", "PartitionState"]

_RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Leader, replicas and in-sync replicas of one partition, as metadata reports them."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class KafkaCluster(AsyncResource):
    """One or more local KRaft nodes; build it with :meth:`single` or :meth:`three_nodes`."""

    def __init__(
        self,
        node_count: int,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
        ports: tuple[int, int] | None = None,
        overrides: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        owned: bool = True,
    ) -> None:
        if node_count < 1:
            raise ConfigError("a Kafka cluster needs at least one node")
        if ports is not None and node_count != 1:
            raise ConfigError("fixed ports are supported for a single node only")
        self.version = version
        self.node_count = node_count
        self.ready_timeout = ready_timeout
        self._data_dir = data_dir
        self._cache_dir = cache_dir
        self._ports = ports
        self._overrides = dict(overrides or {})
        self._owned = owned
        self._tmp: Path | None = None
        self._nodes: tuple[KafkaNode, ...] = ()

    @classmethod
    def single(
        cls,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        overrides: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        owned: bool = True,
    ) -> KafkaCluster:
        """One node on free loopback ports (or the given ones), replication factor 1.

        With ``data_dir`` the data survives a stop and the next start reuses it;
        ``owned=False`` leaves the process running after this interpreter exits.
        """
        ports = None
        if port is not None or controller_port is not None:
            picked = free_ports(2)
            ports = (port or picked[0], controller_port or picked[1])
        return cls(
            1,
            version=version,
            data_dir=data_dir,
            cache_dir=cache_dir,
            ports=ports,
            overrides=overrides,
            ready_timeout=ready_timeout,
            owned=owned,
        )

    @classmethod
    def three_nodes(
        cls,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
        overrides: Mapping[str, str] | None = None,
        ready_timeout: float = 90.0,
    ) -> KafkaCluster:
        """Three nodes, RF 3, ``min.insync.replicas=2``, fast-failover timeouts."""
        return cls(
            3,
            version=version,
            data_dir=data_dir,
            cache_dir=cache_dir,
            overrides=overrides,
            ready_timeout=ready_timeout,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch jars if needed, format new storage, launch every node, wait until all serve."""
        java = await asyncio.to_thread(find_java)
        libs = await ensure_kafka_libs(self.version, self._cache_dir)
        root = self._data_dir
        if root is None:
            self._tmp = root = make_temp_dir("agent-events-kafka-")
        root.mkdir(parents=True, exist_ok=True)
        specs = self._node_specs()
        self._nodes = tuple(
            KafkaNode(
                spec,
                specs,
                root / f"node-{spec.node_id}",
                libs=libs,
                java=java,
                overrides=self._overrides,
                owned=self._owned,
            )
            for spec in specs
        )
        try:
            cluster_id = self._existing_cluster_id() or new_cluster_id()
            await asyncio.gather(*(node.format(cluster_id) for node in self._nodes))
            await asyncio.gather(*(node.launch() for node in self._nodes))
            await asyncio.gather(
                *(node.wait_ready(self.ready_timeout, self.node_count) for node in self._nodes)
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every node at once, SIGKILL after ``grace_s``; remove a temporary data dir."""
        await asyncio.gather(*(node.stop(grace_s=grace_s) for node in self._nodes))
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            await asyncio.to_thread(remove_temp_dir, tmp)

    def _node_specs(self) -> tuple[NodeSpec, ...]:
        if self._ports is not None:
            return (NodeSpec(1, *self._ports),)
        ports = free_ports(2 * self.node_count)
        return tuple(
            NodeSpec(i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(self.node_count)
        )

    def _existing_cluster_id(self) -> str | None:
        ids = {read_cluster_id(node.data_dir) for node in self._nodes} - {None}
        if len(ids) > 1:
            raise BrokerSetupError(
                f"the nodes under {self._nodes[0].home.parent} belong to different clusters "
                f"({sorted(i for i in ids if i)}); remove that folder to start afresh"
            )
        return next(iter(ids), None)

    # -- inspection ------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[KafkaNode, ...]:
        """The nodes, ordered by node id (ids start at 1)."""
        return self._nodes

    def node(self, node_id: int) -> KafkaNode:
        """The node with ``node_id``; ConfigError if there is none."""
        for node in self._nodes:
            if node.node_id == node_id:
                return node
        raise ConfigError(f"no node {node_id} in this cluster (ids: {self.node_ids})")

    @property
    def node_ids(self) -> list[int]:
        """Every node id, running or not."""
        return [node.node_id for node in self._nodes]

    @property
    def running_node_ids(self) -> list[int]:
        """Ids of nodes whose process is alive."""
        return [node.node_id for node in self._nodes if node.running]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated (clients skip dead ones)."""
        return ",".join(node.bootstrap for node in self._nodes)

    def _running_bootstrap(self) -> str:
        alive = [node.bootstrap for node in self._nodes if node.running]
        if not alive:
            raise BrokerSetupError("no node of the cluster is running")
        return ",".join(alive)

    async def describe_partition(
        self, topic: str, partition: int, timeout_s: float = 15.0
    ) -> PartitionState:
        """Leader, replicas and ISR of ``topic``/``partition`` from a fresh metadata request.

        A new admin client per attempt, through running nodes only, retried until ``timeout_s``:
        aiokafka's admin does not fail over after a node dies.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    topics = await self._describe_topic(topic)
            except Exception as exc:
                if time.monotonic() >= deadline:
                    raise BrokerSetupError(
                        f"could not describe {topic}/{partition} within {timeout_s} s: {exc!r}"
                    ) from exc
                await asyncio.sleep(_RETRY_S)
                continue
            state = _find_partition(topics, partition)
            if state is not None:
                return state
            # A node that has not caught up with the controller yet: ask again.
            if time.monotonic() >= deadline:
                raise ConfigError(f"partition {topic}/{partition} is not in the cluster's metadata")
            await asyncio.sleep(_RETRY_S)

    async def _describe_topic(self, topic: str) -> list[dict[str, Any]]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._running_bootstrap(), request_timeout_ms=5_000
        )
        await admin.start()
        try:
            result: list[dict[str, Any]] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return result

    async def partition_leader(self, topic: str, partition: int, timeout_s: float = 15.0) -> int:
        """Node id leading ``topic``/``partition`` (-1 while it has no leader)."""
        return (await self.describe_partition(topic, partition, timeout_s)).leader

    async def active_controller(self, timeout_s: float = 15.0) -> int:
        """Node id of the active KRaft controller (the quorum leader), waiting for an election.

        Read from each running node's ``quorum-state`` file, taking the newest epoch: Kafka's
        Metadata API reports a random broker as "controller" under KRaft, so it cannot tell.
        Raises BrokerSetupError if no running node leads the quorum within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            leader = await asyncio.to_thread(self._quorum_leader)
            if leader is not None and leader in self.running_node_ids:
                return leader
            if time.monotonic() >= deadline:
                raise BrokerSetupError(
                    f"no running node leads the KRaft quorum after {timeout_s} s "
                    f"(running: {self.running_node_ids})"
                )
            await asyncio.sleep(_RETRY_S)

    def _quorum_leader(self) -> int | None:
        best: tuple[int, int] | None = None
        for node in self._nodes:
            if not node.running:
                continue
            state_file = node.data_dir / "__cluster_metadata-0" / "quorum-state"
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
            if leader >= 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        return None if best is None else best[0]

    # -- failures --------------------------------------------------------------------------

    async def kill_node(self, node_id: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Crash a node (SIGKILL, the default) or stop it cleanly (SIGTERM) and reap it."""
        await self.node(node_id).stop(sig=sig)

    async def stop_node(self, node_id: int) -> None:
        """Stop a node cleanly (SIGTERM, then SIGKILL after the deadline)."""
        await self.node(node_id).stop(sig=signal.SIGTERM)

    async def restart_node(self, node_id: int, timeout_s: float | None = None) -> None:
        """Start a stopped node again on its old data (no re-format) and wait until it serves."""
        node = self.node(node_id)
        if node.running:
            raise ConfigError(f"node {node_id} is running; kill or stop it first")
        await node.start(timeout_s or self.ready_timeout, expected_brokers=self.node_count)


def _find_partition(topics: list[dict[str, Any]], partition: int) -> PartitionState | None:
    for entry in topics:
        for part in entry.get("partitions", ()):
            if part["partition"] == partition:
                return PartitionState(
                    leader=int(part["leader"]),
                    replicas=tuple(int(r) for r in part["replicas"]),
                    isr=tuple(int(r) for r in part["isr"]),
                )
    return None
