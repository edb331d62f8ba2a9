"""What a broker can do, read from what it reports, so callers refuse instead of lying.

Kafka-compatible brokers differ. Tansu advertises the client APIs of transactions,
``ListOffsets``, ``OffsetFetch`` and ``DeleteRecords`` but answers them wrongly (or drops the
connection), while it lacks the broker-side APIs behind them in Apache Kafka: the log's
``OffsetForLeaderEpoch`` (API key 23), the transaction coordinator's ``WriteTxnMarkers`` (27)
and the group coordinator's ``OffsetDelete`` (47). So a feature counts as present when the
broker advertises both its client APIs and the broker-side API that implements it.

Detection is read-only: one ``ApiVersions`` request, which needs no ACL, over a connection with
the caller's own security settings. Nothing is created, written or left behind. The answer is
cached per process and connection. What a broker lacks is logged once, at INFO: an operation
that needs a missing feature raises :class:`UnsupportedByBroker`, which says it to the user.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import ApiVersionRequest

from agent_events.agent_runtime.errors import BrokerUnavailable, ConfigError, UnsupportedByBroker
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.connect import start_with_backoff

__all__ = [
    "FEATURES",
    "BrokerCapabilities",
    "capabilities_from_api_versions",
    "connection_of",
    "detect_capabilities",
    "remember_connection",
    "require",
]

log = logging.getLogger(__name__)

FEATURES: dict[str, str] = {
    "idempotence": "an idempotent producer",
    "transactions": "transactional producers",
    "offsets_for_times": "exact offsets_for_times (replay from a timestamp)",
    "group_offsets": "listing a consumer group's committed offsets",
    "delete_records": "deleting records (DeleteRecords)",
    "end_offsets": "exact end offsets from ListOffsets",
}
"""Every feature name :func:`require` and the ``needs`` test marker accept, with a description."""

_API_NAMES = {
    2: "ListOffsets",
    9: "OffsetFetch",
    21: "DeleteRecords",
    22: "InitProducerId",
    23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    27: "WriteTxnMarkers",
    28: "TxnOffsetCommit",
    47: "OffsetDelete",
}

# feature -> (client API keys it calls, the broker-side API key that implements it)
_NEEDS: dict[str, tuple[tuple[int, ...], int]] = {
    "idempotence": ((22,), 23),
    "transactions": ((22, 24, 25, 26, 28), 27),
    "offsets_for_times": ((2,), 23),
    "group_offsets": ((9,), 47),
    "delete_records": ((21,), 23),
    "end_offsets": ((2,), 23),
}


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """A flag per feature of one broker and, for each missing one, why it counts as missing."""

    bootstrap_servers: str
    idempotence: bool
    transactions: bool
    offsets_for_times: bool
    group_offsets: bool
    delete_records: bool
    reasons: tuple[tuple[str, str], ...] = field(default=())
    """(feature, what was seen) for every missing feature."""
    end_offsets: bool = True

    def supports(self, feature: str) -> bool:
        """True if the broker has ``feature`` (a key of FEATURES); ConfigError for unknown names."""
        if feature not in FEATURES:
            raise ConfigError(f"unknown broker feature {feature!r}; known: {', '.join(FEATURES)}")
        return bool(getattr(self, feature))

    def reason(self, feature: str) -> str | None:
        """What was seen for a missing ``feature``; None if the broker has it."""
        return dict(self.reasons).get(feature)

    @property
    def missing(self) -> list[str]:
        """Names of the features the broker lacks."""
        return [name for name in FEATURES if not getattr(self, name)]


def require(capabilities: BrokerCapabilities, feature: str, *, operation: str) -> None:
    """Raise UnsupportedByBroker unless the broker has ``feature``; ``operation`` names the caller.

    >>> require(caps, "offsets_for_times", operation="replay --from-time")
    """
    if capabilities.supports(feature):
        return
    raise UnsupportedByBroker(
        f"{operation} needs {FEATURES[feature]}, which the broker at "
        f"{capabilities.bootstrap_servers} does not support ({capabilities.reason(feature)}); "
        "run it against Apache Kafka"
    )


def _api(key: int) -> str:
    return f"{_API_NAMES[key]} (API key {key})"


def _missing_reason(advertised: Mapping[int, int], client: tuple[int, ...], broker: int) -> str:
    absent = [key for key in client if key not in advertised]
    if absent:
        return "the broker does not advertise " + ", ".join(_api(key) for key in absent)
    return (
        f"the broker advertises {', '.join(_api(key) for key in client)} but not "
        f"{_api(broker)}, which implements it in Apache Kafka"
    )


def capabilities_from_api_versions(
    bootstrap_servers: str, advertised: Mapping[int, int]
) -> BrokerCapabilities:
    """The capabilities implied by an ``ApiVersions`` answer (API key -> max version)."""
    flags: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    for feature, (client, broker) in _NEEDS.items():
        flags[feature] = all(key in advertised for key in (*client, broker))
        if not flags[feature]:
            reasons[feature] = _missing_reason(advertised, client, broker)
    return BrokerCapabilities(
        bootstrap_servers=bootstrap_servers, reasons=tuple(sorted(reasons.items())), **flags
    )


_cache: dict[tuple[object, ...], BrokerCapabilities] = {}
_connections: weakref.WeakKeyDictionary[object, KafkaConnectionConfig] = weakref.WeakKeyDictionary()


def _key(connection: KafkaConnectionConfig) -> tuple[object, ...]:
    return (
        connection.bootstrap_servers,
        connection.security_protocol,
        connection.sasl_mechanism,
        connection.sasl_plain_username,
    )


async def detect_capabilities(
    connection: KafkaConnectionConfig, *, refresh: bool = False
) -> BrokerCapabilities:
    """What the broker behind ``connection`` can do, from its ``ApiVersions`` answer (cached).

    Read-only and ACL-free; connects with ``connection``'s security settings. Raises
    :class:`BrokerUnavailable` if no broker answers within ``connect_timeout_s``.
    """
    key = _key(connection)
    if not refresh and key in _cache:
        return _cache[key]
    advertised = await _api_versions(connection)
    caps = capabilities_from_api_versions(connection.bootstrap_servers, advertised)
    if caps.missing and key not in _cache:
        log.info(
            "broker %s lacks %s; operations that need them will refuse",
            connection.bootstrap_servers,
            "; ".join(FEATURES[name] for name in caps.missing),
        )
    _cache[key] = caps
    return caps


async def _api_versions(connection: KafkaConnectionConfig) -> dict[int, int]:
    client = AIOKafkaClient(**connection.client_kwargs())
    await start_with_backoff(
        client.bootstrap,
        what="broker capability check",
        bootstrap_servers=connection.bootstrap_servers,
        deadline_s=connection.connect_timeout_s,
        close=client.close,
    )
    try:
        node = client.get_random_node()
        if node is None:
            raise BrokerUnavailable(
                f"the broker at {connection.bootstrap_servers} listed no brokers in its metadata"
            )
        response: Any = await client.send(node, ApiVersionRequest())
    finally:
        await client.close()
    answer: dict[str, Any] = response.to_object()
    return {int(v["api_key"]): int(v["max_version"]) for v in answer["api_versions"]}


def remember_connection(client: object, connection: KafkaConnectionConfig) -> None:
    """Note which connection ``client`` was made with, for :func:`connection_of`."""
    _connections[client] = connection


def connection_of(client: object) -> KafkaConnectionConfig | None:
    """The connection :func:`remember_connection` noted for ``client`` (its credentials)."""
    return _connections.get(client)
