"""Apache Kafka in a container, for test runs on a machine with a Docker engine.

The image is ``apache/kafka`` at :data:`~agent_events.broker.kafka_libs.DEFAULT_KAFKA_VERSION`,
the version ``docker-compose.yml`` and the local broker (Maven jars) run, so the three
ways of getting a broker run the same Kafka. testcontainers' own ``KafkaContainer`` drives
Confluent's images (it rewrites their start scripts), so the Apache image is started as a
``DockerContainer`` with KRaft settings: one node, the client port mapped to a free port
of the host chosen up front, because the broker must advertise the address clients dial.
"""

from __future__ import annotations

import socket
from typing import Any, Final

from agent_events.broker.kafka_libs import DEFAULT_KAFKA_VERSION

__all__ = ["KAFKA_IMAGE", "kafka_container", "kafka_container_env"]

KAFKA_IMAGE: Final = f"apache/kafka:{DEFAULT_KAFKA_VERSION}"
_CLIENT_PORT: Final = 9092


def kafka_container_env(host_port: int) -> dict[str, str]:
    """The broker settings of a one-node KRaft container reachable at ``127.0.0.1:host_port``."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{_CLIENT_PORT},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{host_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "3",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def kafka_container() -> tuple[Any, str]:
    """A configured (not started) testcontainers container and its bootstrap address."""
    from testcontainers.core.container import DockerContainer

    port = _free_port()
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(_CLIENT_PORT, ("127.0.0.1", port))
    for name, value in kafka_container_env(port).items():
        container = container.with_env(name, value)
    return container, f"127.0.0.1:{port}"
