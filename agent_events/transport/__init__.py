"""transport: the one place that knows how to reach Kafka.

Connection settings (servers, security, timeouts), the client factories (admin,
producer, consumer as async context managers, started with one backoff with jitter),
and the bounded LRU map the clients' caches use. Everything else in agent-events builds
its Kafka clients here, so a broker that is down, a SASL setting or the client library
(``client="aiokafka"``, or ``"confluent"`` for librdkafka) is handled once, and so is a
broker that goes away while the clients run (:func:`connection_outage`: the library's
connection errors become three log lines).
"""

from agent_events.agent_runtime.lru import LRUMap, require_positive_int
from agent_events.transport._backoff import BrokerUnreachable, backoff_delay, start_with_backoff
from agent_events.transport._clients import (
    ClientBackend,
    admin_client,
    backend_for,
    consumer_client,
    producer_client,
    start_client,
)
from agent_events.transport._connection import (
    ClientKind,
    ConnectionOptions,
    KafkaConnectionConfig,
    SaslMechanism,
    SecurityProtocol,
)
from agent_events.transport._limits import DEFAULT_MAX_MESSAGE_BYTES, max_message_bytes
from agent_events.transport._outage import ConnectionOutage, OutageState
from agent_events.transport._quiet import broker_answered, connection_outage, quiet_library_logs

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "BrokerUnreachable",
    "ClientBackend",
    "ClientKind",
    "ConnectionOptions",
    "ConnectionOutage",
    "KafkaConnectionConfig",
    "LRUMap",
    "OutageState",
    "SaslMechanism",
    "SecurityProtocol",
    "admin_client",
    "backend_for",
    "backoff_delay",
    "broker_answered",
    "connection_outage",
    "consumer_client",
    "max_message_bytes",
    "producer_client",
    "quiet_library_logs",
    "require_positive_int",
    "start_client",
    "start_with_backoff",
]
