"""Reading a bounded range of a topic without joining a consumer group.

The DLQ tools and replay read "from here to the end as it was when we started":
the end offsets are taken once at the start, so a scan always finishes even
while producers keep writing, and no group's committed offsets are touched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agent_runtime.errors import ConfigError
from producers.config import KafkaConnectionConfig
from producers.connect import start_with_backoff

__all__ = ["scan_topic", "standalone_consumer", "topic_partitions"]


@asynccontextmanager
async def standalone_consumer(
    connection: KafkaConnectionConfig, **overrides: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with no group: it commits nothing, ever."""
    kwargs = connection.client_kwargs()
    kwargs.update(group_id=None, enable_auto_commit=False, isolation_level="read_committed")
    kwargs.update(overrides)
    consumer = AIOKafkaConsumer(**kwargs)
    await start_with_backoff(
        consumer.start,
        what="reader",
        bootstrap_servers=connection.bootstrap_servers,
        deadline_s=connection.connect_timeout_s,
        close=consumer.stop,
    )
    try:
        yield consumer
    finally:
        await consumer.stop()


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, partitions: Collection[int] | None = None
) -> list[TopicPartition]:
    """The topic's partitions (or the chosen ones), checked against the broker's metadata."""
    known = consumer.partitions_for_topic(topic)
    if not known:
        await consumer._client.force_metadata_update()  # a topic is unknown until asked for
        known = consumer.partitions_for_topic(topic)
    if not known:
        raise ConfigError(f"topic {topic!r} does not exist on the broker")
    chosen = sorted(known) if partitions is None else sorted(set(partitions))
    missing = [p for p in chosen if p not in known]
    if missing:
        raise ConfigError(
            f"topic {topic!r} has partitions {sorted(known)}; there is no partition {missing[0]}"
        )
    return [TopicPartition(topic, p) for p in chosen]


async def scan_topic(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: dict[TopicPartition, int] | None = None,
    stop: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[Any]:
    """Yield records of ``tps`` from ``start`` (default: earliest) up to ``stop``.

    ``stop`` is exclusive and defaults to the end offsets at the start of the
    scan. Records of one partition come in offset order.
    """
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    end = stop if stop is not None else await consumer.end_offsets(tps)
    remaining: set[TopicPartition] = set()
    for tp in tps:
        first = max(begin[tp], (start or {}).get(tp, begin[tp]))
        if first < end[tp]:
            consumer.seek(tp, first)
            remaining.add(tp)
    if not remaining:
        return
    consumer.pause(*[tp for tp in tps if tp not in remaining])
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batch.items():
            if tp not in remaining:
                continue
            for record in records:
                if record.offset >= end[tp]:
                    break
                yield record
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
                consumer.pause(tp)
        for tp in list(remaining):
            if not batch.get(tp) and await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
