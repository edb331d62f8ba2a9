"""The confluent backend (``client="confluent"``): librdkafka through confluent-kafka.

librdkafka is a blocking client with its own threads; the adapters in
:mod:`._confluent_producer` and :mod:`._confluent_consumer` give it the asyncio face of
the aiokafka calls our producer and consumer service make, and raise aiokafka's error
classes (:func:`aiokafka_error`), so everything above the adapters handles one set of
errors whichever library runs. confluent-kafka is optional: it is imported only when a
confluent client is built.

What stays on aiokafka: admin clients and a group's own readers that assign partitions
themselves (a service's dead-letter sizing and lag sampling work unchanged beside a
librdkafka member). Group-less readers (replay, scans, CLI tools) refuse a confluent
connection with a :class:`ConfigError`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    for_code,
)
from aiokafka.errors import KafkaError as AIOKafkaError

from agent_events.agent_runtime.errors import ConfigError
from agent_events.transport._aiokafka import RETRIABLE, AioKafkaBackend
from agent_events.transport._connection import KafkaConnectionConfig, rdkafka_options

if TYPE_CHECKING:
    from agent_events.transport._confluent_producer import ConfluentProducer

__all__ = ["ConfluentBackend", "aiokafka_error", "probe_broker", "require_confluent_kafka"]

_LIBRDKAFKA_LOGGER = logging.getLogger("agent_events.transport.librdkafka")
"""librdkafka's own log lines go to Python logging here, not straight to stderr."""

# librdkafka's local (negative) error codes that mean "no broker answered".
_UNREACHABLE = {-195, -187, -193}  # _TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE
_TIMED_OUT = {-192, -185}  # _MSG_TIMED_OUT, _TIMED_OUT
# Group answers that mean "not a member of this generation": the partitions may be someone else's.
_NOT_A_MEMBER = {22, 25, 82, -142}  # ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
# _ASSIGNMENT_LOST


def require_confluent_kafka() -> None:
    """Raise :class:`ConfigError` when confluent-kafka is not installed."""
    try:
        import confluent_kafka  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise ConfigError(
            "client='confluent' needs confluent-kafka (pip install 'agent-events[confluent]'), "
            "or use client='aiokafka'"
        ) from None


def probe_broker(client: Any, timeout_s: float) -> None:
    """Ask a broker for metadata (blocking); raises librdkafka's error when none answers.

    librdkafka connects lazily, so without this a wrong address shows only as records
    timing out. The question is about one topic that every Kafka cluster has (or creates
    for the first group), not about all topics: on a cluster with thousands of topics
    that would take seconds.
    """
    client.list_topics(topic="__consumer_offsets", timeout=timeout_s)


def aiokafka_error(error: Any) -> AIOKafkaError:
    """The aiokafka exception for a librdkafka ``KafkaError`` (or a ``KafkaException``).

    Broker answers keep their protocol code (``MSG_SIZE_TOO_LARGE`` becomes
    :class:`~aiokafka.errors.MessageSizeTooLargeError`); librdkafka's own errors become
    a connection error, a timeout or a commit failure as aiokafka would have raised.
    """
    if hasattr(error, "args") and error.args and hasattr(error.args[0], "code"):
        error = error.args[0]  # a KafkaException around its KafkaError
    if not hasattr(error, "code"):
        return AIOKafkaError(str(error))
    code, text = error.code(), f"{error.name()}: {error.str()}"
    if code in _NOT_A_MEMBER:
        return CommitFailedError(text)
    if code > 0:
        return for_code(code)(text)
    if code in _UNREACHABLE:
        return KafkaConnectionError(text)
    if code in _TIMED_OUT:
        return KafkaTimeoutError(text)
    return AIOKafkaError(text)


class ConfluentBackend:
    """Builds (unstarted) librdkafka producers and group consumers behind aiokafka's API."""

    retriable = RETRIABLE  # the adapters raise aiokafka's errors

    def supports_compression(self, codec_name: str) -> bool:
        """librdkafka as confluent-kafka ships it has every codec built in."""
        return codec_name in ("gzip", "snappy", "lz4", "zstd")

    def admin(self, connection: KafkaConnectionConfig, options: dict[str, Any]) -> Any:
        return AIOKafkaAdminClient(**connection.client_kwargs(), **options)

    def producer(self, connection: KafkaConnectionConfig, options: dict[str, Any]) -> Any:
        return self.confluent_producer(connection, options)

    def confluent_producer(
        self, connection: KafkaConnectionConfig, options: dict[str, Any]
    ) -> ConfluentProducer:
        """An idempotent-capable librdkafka producer; ``options`` as aiokafka names them."""
        require_confluent_kafka()
        from agent_events.transport._confluent_producer import ConfluentProducer

        config = {
            **connection.rdkafka_config(),
            "logger": _LIBRDKAFKA_LOGGER,
            "request.timeout.ms": connection.request_timeout_ms,
            # a record not acknowledged within the request timeout fails, as with aiokafka
            "message.timeout.ms": connection.request_timeout_ms,
            "partitioner": "murmur2_random",
            **rdkafka_options(options),
        }
        return ConfluentProducer(
            config, bootstrap_servers=connection.bootstrap_servers, probe_s=_probe_s(connection)
        )

    def consumer(
        self, connection: KafkaConnectionConfig, topics: tuple[str, ...], options: dict[str, Any]
    ) -> Any:
        """A group member of ``topics`` on librdkafka; a group's own reader on aiokafka.

        With ``topics`` (a :class:`~agent_events.consumers.ConsumerService`): a
        :class:`ConfluentConsumer` with cooperative-sticky assignment that commits only
        when asked. Without topics but with a ``group_id`` (a service's helper that
        assigns partitions itself, such as the lag sampler): aiokafka's consumer. Without
        either (replay, scans, CLI readers): :class:`ConfigError`.
        """
        if not topics:
            if options.get("group_id") is None:
                raise ConfigError(
                    "client='confluent' runs KafkaEventProducer and ConsumerService only; "
                    "replay, readers and CLI tools run on aiokafka: set client='aiokafka' for them"
                )
            return AioKafkaBackend().consumer(connection, (), options)
        if options.get("group_id") is None:
            raise ConfigError("client='confluent' subscribes consumer groups only: set group_id")
        require_confluent_kafka()
        from agent_events.transport._confluent_consumer import ConfluentConsumer

        config = {
            **connection.rdkafka_config(),
            "logger": _LIBRDKAFKA_LOGGER,
            **rdkafka_options(options),
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        consumer = ConfluentConsumer(
            config,
            bootstrap_servers=connection.bootstrap_servers,
            probe_s=_probe_s(connection),
            max_poll_records=int(options.get("max_poll_records") or 500),
        )
        consumer.subscribe(list(topics))
        return consumer

    def recover_from_refusal(self, producer: Any, error: BaseException) -> bool:
        """Nothing to do: librdkafka's idempotent producer resynchronises its sequences itself."""
        return False


def _probe_s(connection: KafkaConnectionConfig) -> float:
    """How long one start attempt waits for a broker (librdkafka waits the whole time)."""
    return min(2.0, connection.connect_timeout_s, connection.request_timeout_ms / 1000)
