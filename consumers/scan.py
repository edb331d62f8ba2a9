"""Reading a bounded range of a topic without joining a consumer group.

The DLQ tools and replay read "from here to the end as it was when we started":
the end offsets are taken once at the start, so a scan always finishes even
while producers keep writing, and no group's committed offsets are touched.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import BrokerUnavailable, ConfigError
from agent_events.consumers.capabilities import (
    connection_of,
    detect_capabilities,
    remember_connection,
)
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.transport import backend_for, start_client

__all__ = [
    "log_end_offsets",
    "scan_in_time_order",
    "scan_topic",
    "standalone_consumer",
    "topic_partitions",
]


@asynccontextmanager
async def standalone_consumer(
    connection: KafkaConnectionConfig, **overrides: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with no group: it commits nothing, ever.

    The consumer remembers ``connection``, so :func:`log_end_offsets` can ask what the broker
    behind it reports (with the same credentials) before trusting its end offsets.
    """
    options: dict[str, Any] = {
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        **overrides,
    }
    consumer = backend_for(connection).consumer(connection, (), options)
    remember_connection(consumer, connection)
    await start_client(consumer, connection, what="reader")
    # aiokafka's group-less coordinator starts a task in start(); stop() before that task
    # first ran raises CancelledError and leaves the client open. Let it run once.
    await asyncio.sleep(0)
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
        # A topic is unknown until asked for; aiokafka has no public metadata refresh.
        await consumer._client.force_metadata_update()  # noqa: SLF001 (no public refresh)
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


async def log_end_offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], *, timeout_s: float = 30.0
) -> dict[TopicPartition, int]:
    """The next offset of each partition (the last stable offset under ``read_committed``).

    Apache Kafka's ``ListOffsets(latest)`` answer is used as it is. Some brokers (Tansu)
    answer it with the base offset of the last record *batch* plus one (a topic of 110
    records written in one batch "ends" at 1), while the high watermark in their fetch
    responses is right: where the broker's capabilities say so (or are unknown, for a
    consumer not made by :func:`standalone_consumer`), one fetch at the listed end minus one
    is made and the larger answer kept, which changes the consumer's assignment.
    """
    listed: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    connection = connection_of(consumer)
    if connection is not None and (await detect_capabilities(connection)).end_offsets:
        return dict(listed)
    return await _ends_from_fetch(consumer, tps, listed, timeout_s)


async def _ends_from_fetch(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    listed: dict[TopicPartition, int],
    timeout_s: float,
) -> dict[TopicPartition, int]:
    begin: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
    probe = [tp for tp in tps if listed[tp] > begin[tp]]
    if not probe:
        return dict(listed)
    consumer.assign(probe)
    for tp in probe:
        consumer.seek(tp, listed[tp] - 1)
    committed_only = getattr(consumer, "_isolation_level", None) == "read_committed"
    ends = dict(listed)
    pending = set(probe)
    give_up_at = time.monotonic() + timeout_s
    while pending:
        await consumer.getmany(*pending, timeout_ms=100)
        for tp in list(pending):
            seen = consumer.last_stable_offset(tp) if committed_only else consumer.highwater(tp)
            if seen is not None:
                ends[tp] = max(listed[tp], seen)
                pending.discard(tp)
        if pending and time.monotonic() > give_up_at:
            raise BrokerUnavailable(
                f"no fetch answer for {sorted(tp.partition for tp in pending)} of "
                f"{probe[0].topic!r} within {timeout_s:.0f} s; is the broker overloaded?"
            )
    return ends


async def scan_topic(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: dict[TopicPartition, int] | None = None,
    stop: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[Any]:
    """Yield records of ``tps`` from ``start`` (default: earliest) up to ``stop``.

    ``stop`` is exclusive and defaults to the end offsets at the start of the
    scan (:func:`log_end_offsets`). Records of one partition come in offset order.
    """
    end = stop if stop is not None else await log_end_offsets(consumer, tps)
    remaining = await _seek_to_start(consumer, tps, start or {}, end)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batch.items():
            if tp not in remaining:
                continue
            for record in records:
                if record.offset >= end[tp]:
                    break
                yield record
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
                consumer.pause(tp)


async def scan_in_time_order(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: dict[TopicPartition, int] | None = None,
    stop: dict[TopicPartition, int] | None = None,
    *,
    read_ahead: int = 500,
) -> AsyncIterator[Any]:
    """:func:`scan_topic` with partitions merged oldest first, the same way on every run.

    The next record is the smallest ``(timestamp, partition, offset)`` among the next
    record of every partition not yet finished, so the order depends on the data, not
    on which fetch answered first; each partition stays in offset order. At most
    ``read_ahead`` records per partition wait in memory (a full partition is paused).
    """
    end = stop if stop is not None else await log_end_offsets(consumer, tps)
    fetching = await _seek_to_start(consumer, tps, start or {}, end)
    waiting: dict[TopicPartition, deque[Any]] = {tp: deque() for tp in fetching}
    while waiting:
        while any(not waiting[tp] for tp in fetching):
            await _fetch_ahead(consumer, fetching, waiting, end, read_ahead)
        for tp in [tp for tp, queue in waiting.items() if not queue]:
            del waiting[tp]  # finished: nothing waits and nothing is to come
        if not waiting:
            return
        tp = min(waiting, key=lambda t: (waiting[t][0].timestamp, t.partition))
        yield waiting[tp].popleft()
        if tp in fetching and len(waiting[tp]) < read_ahead:
            consumer.resume(tp)


async def _fetch_ahead(
    consumer: AIOKafkaConsumer,
    fetching: set[TopicPartition],
    waiting: dict[TopicPartition, deque[Any]],
    end: dict[TopicPartition, int],
    read_ahead: int,
) -> None:
    """One fetch for :func:`scan_in_time_order`; finished or full partitions are paused."""
    batch = await consumer.getmany(*fetching, timeout_ms=500)
    for tp, records in batch.items():
        if tp in fetching:
            waiting[tp].extend(r for r in records if r.offset < end[tp])
    for tp in list(fetching):
        if await consumer.position(tp) >= end[tp]:
            fetching.discard(tp)
            consumer.pause(tp)
        elif len(waiting[tp]) >= read_ahead:
            consumer.pause(tp)


async def _seek_to_start(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
) -> set[TopicPartition]:
    """Assign ``tps``, seek each to its start; return those with records before their end."""
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    remaining: set[TopicPartition] = set()
    for tp in tps:
        first = max(begin[tp], start.get(tp, begin[tp]))
        if first < end[tp]:
            consumer.seek(tp, first)
            remaining.add(tp)
    consumer.pause(*[tp for tp in tps if tp not in remaining])
    return remaining
