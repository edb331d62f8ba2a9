"""Configuration files of a local KRaft node: server.properties, log4j2.properties, cluster id.

Pure functions (no I/O): what a node is given is decided here, the process is run in
``kafka_node``. A node is always a combined broker+controller on 127.0.0.1 with a static
quorum (``controller.quorum.voters``), which is why controller ports are fixed up front.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FAST_FAILOVER_SETTINGS",
    "NodeSpec",
    "new_cluster_id",
    "render_log4j2_properties",
    "render_server_properties",
]

FAST_FAILOVER_SETTINGS: Mapping[str, str] = {
    "broker.heartbeat.interval.ms": "200",
    "broker.session.timeout.ms": "1000",
    "controller.quorum.fetch.timeout.ms": "1000",
    "controller.quorum.election.timeout.ms": "500",
}
"""Fence a dead node in 1-2 s instead of ~10 s (measured: no spurious elections under load)."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Identity and ports of one node; ports are loopback TCP ports."""

    node_id: int
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>``, the client listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def voter(self) -> str:
        """This node's entry in ``controller.quorum.voters``."""
        return f"{self.node_id}@127.0.0.1:{self.controller_port}"


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def render_server_properties(
    node: NodeSpec,
    voters: Sequence[NodeSpec],
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """server.properties for ``node`` in a cluster of ``voters`` (itself included).

    One voter gives replication factor 1 everywhere; three or more give RF 3,
    ``min.insync.replicas=2`` and the fast-failover timeouts, as the failover tests need.
    ``overrides`` win over everything.
    """
    replicated = len(voters) >= 3
    rf = "3" if replicated else "1"
    min_isr = "2" if replicated else "1"
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(v.voter for v in voters),
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "3",
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.dedupe.buffer.size": "16777216",
    }
    if replicated:
        props["unclean.leader.election.enable"] = "false"
        props.update(FAST_FAILOVER_SETTINGS)
    props.update(overrides or {})
    return "".join(f"{key}={value}\n" for key, value in props.items())


def render_log4j2_properties() -> str:
    """One file appender to ``${sys:kafka.logs.dir}/server.log`` at INFO, quieter noisy loggers."""
    return """\
status = warn
name = agent-events-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""
