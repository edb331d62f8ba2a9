"""The aiokafka backend: how our client factories build and start aiokafka clients."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, codec
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    BrokerResponseError,
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
)

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


class _Consumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka ships no types
    """An ``AIOKafkaConsumer`` whose ``stop()`` also finishes after the broker went away.

    aiokafka's fetcher cancels its pending fetch tasks on close and awaits them
    unguarded: with the broker gone, one sleeps in its retry backoff, its cancel escapes
    ``stop()`` (a service stopped by SIGTERM exited 1 with a traceback) and the
    connections are left open. That cancel is aiokafka's own; the caller's still goes on.
    """

    async def stop(self) -> None:
        try:
            await super().stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            await self._client.close()


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
        return _Consumer(*topics, **{**connection.client_kwargs(), **options})

    def recover_from_refusal(self, producer: Any, error: BaseException) -> bool:
        """Make an idempotent ``producer`` usable again after the broker refused a batch.

        aiokafka numbers a partition's batches when it sends them; a batch the broker
        refuses without writing it (a timestamp out of range, over ``max.message.bytes``)
        leaves that number behind, and every later batch to the partition fails with
        ``OutOfOrderSequenceNumber`` for the life of the client. The Java client resets
        its producer id in that case (``resetIdempotentProducerId``); aiokafka has no
        such call, so this resets the idempotence state in place: no producer id and
        every sequence at 0, so the sender fetches a new id before its next batch.

        Safe to call for each record of the refused batch: their callbacks run before
        the sender drains again, and only the first finds an id to reset. Transactional
        producers are left alone (their transaction is aborted instead). Returns whether
        the state was reset.
        """
        if not isinstance(error, BrokerResponseError):
            return False  # not the broker's answer (connection lost, cancelled): nothing to resync
        manager = producer._txn_manager  # noqa: SLF001 - aiokafka offers no public reset
        if manager is None or manager.transactional_id is not None or not manager.has_pid():
            return False
        manager.__init__(None, manager.transaction_timeout_ms)
        return True
