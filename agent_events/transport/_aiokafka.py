"""The aiokafka backend: how our client factories build and start aiokafka clients."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, codec
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError

from agent_events.transport._connection import KafkaConnectionConfig

__all__ = ["RETRIABLE", "AioKafkaBackend"]

# What aiokafka raises at start() for a broker that is not there (yet).
RETRIABLE: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    OSError,
    TimeoutError,
)


class AioKafkaBackend:
    """Builds (unstarted) aiokafka clients from a connection and client options."""

    retriable = RETRIABLE

    def supports_compression(self, codec_name: str) -> bool:
        """Whether this installation can compress with ``codec_name`` (gzip is built in)."""
        check = getattr(codec, f"has_{codec_name}", None)
        return bool(check is not None and check())

    def admin(self, connection: KafkaConnectionConfig, options: dict[str, Any]) -> Any:
        return AIOKafkaAdminClient(**connection.client_kwargs(), **options)

    def producer(self, connection: KafkaConnectionConfig, options: dict[str, Any]) -> Any:
        return AIOKafkaProducer(**{**connection.client_kwargs(), **options})

    def consumer(
        self, connection: KafkaConnectionConfig, topics: tuple[str, ...], options: dict[str, Any]
    ) -> Any:
        return AIOKafkaConsumer(*topics, **{**connection.client_kwargs(), **options})
