"""Client factories: admin, producer and consumer as async context managers.

Each factory builds the client from a :class:`KafkaConnectionConfig` through the backend
its ``client`` field names, starts it with the one backoff
(:func:`~agent_events.transport.start_with_backoff`) and stops it on the way out, also
when the block raises or is cancelled. Each client library is a :class:`ClientBackend`
registered under its ``client`` name (``aiokafka``, ``confluent``); callers do not change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from agent_events.agent_runtime.errors import ConfigError
from agent_events.transport._aiokafka import AioKafkaBackend
from agent_events.transport._backoff import start_with_backoff
from agent_events.transport._confluent import ConfluentBackend
from agent_events.transport._connection import KafkaConnectionConfig

__all__ = [
    "ClientBackend",
    "admin_client",
    "backend_for",
    "consumer_client",
    "producer_client",
    "start_client",
]


class ClientBackend(Protocol):
    """Builds unstarted clients of one Kafka client library (``start()``/``close()|stop()``)."""

    retriable: tuple[type[BaseException], ...]

    def supports_compression(self, codec_name: str) -> bool: ...

    def admin(self, connection: KafkaConnectionConfig, options: dict[str, Any]) -> Any: ...

    def producer(self, connection: KafkaConnectionConfig, options: dict[str, Any]) -> Any: ...

    def consumer(
        self, connection: KafkaConnectionConfig, topics: tuple[str, ...], options: dict[str, Any]
    ) -> Any: ...

    def recover_from_refusal(self, producer: Any, error: BaseException) -> bool:
        """After the broker refused a record of ``producer``: make later sends work."""
        ...


_BACKENDS: dict[str, ClientBackend] = {
    "aiokafka": AioKafkaBackend(),
    "confluent": ConfluentBackend(),
}


def backend_for(connection: KafkaConnectionConfig) -> ClientBackend:
    """The backend named by ``connection.client``; :class:`ConfigError` for an unknown name."""
    try:
        return _BACKENDS[connection.client]
    except KeyError:
        raise ConfigError(
            f"client {connection.client!r} is not available; choose one of: "
            f"{', '.join(sorted(_BACKENDS))}"
        ) from None


async def start_client(
    client: Any,
    connection: KafkaConnectionConfig,
    *,
    what: str,
    stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start an unstarted ``client`` with the one backoff, closing it after each failure.

    Cancelled while starting, the half-started client is closed too, so no socket or
    library task outlives the caller.
    """
    close = stop if stop is not None else client.stop
    try:
        await start_with_backoff(
            client.start,
            what=what,
            bootstrap_servers=connection.bootstrap_servers,
            deadline_s=connection.connect_timeout_s,
            close=close,
            retriable=backend_for(connection).retriable,
            credentials=connection.credentials_text(),
        )
    except asyncio.CancelledError:
        await close()
        raise


@contextlib.asynccontextmanager
async def admin_client(
    connection: KafkaConnectionConfig, *, what: str = "admin client", **options: Any
) -> AsyncIterator[Any]:
    """A started admin client; closed when the block ends."""
    admin = backend_for(connection).admin(connection, options)
    await start_client(admin, connection, what=what, stop=admin.close)
    try:
        yield admin
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def producer_client(
    connection: KafkaConnectionConfig, *, what: str = "producer", **options: Any
) -> AsyncIterator[Any]:
    """A started producer (``options`` are the library's producer options); stopped at the end.

    Stopping flushes what was sent but not yet acknowledged, so leaving the block normally
    loses nothing that ``send`` accepted.
    """
    producer = backend_for(connection).producer(connection, options)
    await start_client(producer, connection, what=what)
    try:
        yield producer
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def consumer_client(
    connection: KafkaConnectionConfig, *topics: str, what: str = "consumer", **options: Any
) -> AsyncIterator[Any]:
    """A started consumer of ``topics`` (none: assign partitions yourself); stopped at the end.

    Stopping does not commit: commit what was processed before leaving the block.
    """
    consumer = backend_for(connection).consumer(connection, topics, options)
    await start_client(consumer, connection, what=what)
    try:
        yield consumer
    finally:
        await consumer.stop()
