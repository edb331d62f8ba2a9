"""Writing a task's output, changelog and input offset: in one transaction, or in order.

**Exactly once** (:class:`TransactionalCommitter`, Apache Kafka): one transactional
producer per input partition, ``transactional_id = {group}-{topic}-{partition}``.
Starting it fences any earlier owner of the partition (a zombie after a crash or a
rebalance) and aborts its open transaction, *before* the new owner reads the
changelog. A commit of one partition is:

1. begin a transaction;
2. send the output records (closed windows, updates, late events, alerts, dead
   letters, or re-keyed events);
3. send the changelog records (dirty windows, tombstones of purged ones, then the
   meta record with watermark and next offset);
4. add the next input offset to the transaction (``send_offsets_to_transaction``);
5. commit: all of it becomes visible to ``read_committed`` readers, or none.

**At least once** (:class:`AtLeastOnceCommitter`, any broker, e.g. Tansu): one
producer, and each step waits for the previous one's acknowledgements:

1. send the output records of every partition and wait until all are acknowledged;
2. send the changelog records and wait;
3. commit the input offsets to the group.

A crash between 1 and 3 re-processes the uncommitted records on restart: windows
may be emitted twice and, when the crash falls between 2 and 3, the state restored
from the changelog has already counted them (the meta record's offset makes the
restart skip them when step 2 finished). Nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import KafkaError, UnsupportedByBroker
from agent_events.consumers.copies import CopySizes
from agent_events.consumers.member import commit_offsets
from agent_events.consumers.windows.config import WindowedAggregationConfig
from agent_events.consumers.windows.tasks import Outgoing, PartitionTask
from agent_events.producers.connect import start_with_backoff

__all__ = ["AtLeastOnceCommitter", "Committer", "TransactionalCommitter"]

logger = logging.getLogger(__name__)


class Committer(Protocol):
    """How a processor makes a batch of tasks' work durable."""

    async def open(self, tps: Sequence[TopicPartition]) -> None:
        """Prepare to commit for newly assigned partitions (fence earlier owners)."""

    async def close(self, tps: Sequence[TopicPartition]) -> None:
        """Release what :meth:`open` took for these partitions."""

    unreachable: bool
    """Whether the last commit ran out of time (the broker is unreachable, presumably)."""

    async def commit(self, tasks: Sequence[PartitionTask]) -> list[TopicPartition]:
        """Commit every task's collected work; returns the partitions whose commit failed."""

    async def stop(self) -> None:
        """Release everything."""


def _producer_kwargs(
    config: WindowedAggregationConfig, copies: CopySizes, **extra: Any
) -> dict[str, Any]:
    """Output producer options; it takes the largest copy of an input record (DLQ, late)."""
    kwargs = config.connection().client_kwargs()
    kwargs.update(
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=copies.max_request_size,
        **extra,
    )
    return kwargs


async def _send_all(producer: AIOKafkaProducer, task: PartitionTask) -> list[asyncio.Future[Any]]:
    """Send the task's outgoing records in order; one future per batch or record.

    Records with a partition (re-keyed events, watermark reports: nearly all of a
    re-keying task's output) go into one batch per partition, which costs a fraction
    of aiokafka's per-record ``send``; the others are sent one by one, after the open
    batches of their topic, so each partition keeps the order of ``outgoing``.
    """
    futures: list[asyncio.Future[Any]] = []
    batches: dict[tuple[str, int], Any] = {}

    async def hand_off(topic: str, partition: int) -> None:
        futures.append(
            await producer.send_batch(batches.pop((topic, partition)), topic, partition=partition)
        )

    for o in task.outgoing:
        if o.partition is None:
            for topic, partition in [tp for tp in batches if tp[0] == o.topic]:
                await hand_off(topic, partition)
            futures.append(
                await producer.send(
                    o.topic, o.value, key=o.key, headers=o.headers, timestamp_ms=o.timestamp_ms
                )
            )
            continue
        tp = (o.topic, o.partition)
        batch = batches.get(tp)
        if batch is None:
            batch = batches[tp] = producer.create_batch()
        if _append(batch, o) is None:  # full: hand it off, start the next one
            await hand_off(*tp)
            batch = batches[tp] = producer.create_batch()
            if _append(batch, o) is None:  # an empty batch takes any record
                raise KafkaError(f"a record for {o.topic}[{o.partition}] fits no batch")
    for tp in list(batches):
        await hand_off(*tp)
    return futures


_CLEANUP_S = 5.0
"""How long aborting a failed transaction or stopping its producer may take: with the
broker gone aiokafka would wait for it forever."""


def commit_deadline_s(config: WindowedAggregationConfig) -> float:
    """How long one commit may take (the request timeout): aiokafka waits for an
    unreachable transaction coordinator forever, and a commit that cannot finish must
    fail (its work is redone from the last commit), so a stop is never stuck behind it."""
    return config.request_timeout_ms / 1000


async def _stop_within(producer: AIOKafkaProducer, seconds: float) -> None:
    """Stop ``producer``; after ``seconds`` (records it could not deliver) give up on it."""
    try:
        async with asyncio.timeout(seconds):
            await producer.stop()
    except TimeoutError:
        logger.warning("a window producer did not stop within %.0fs; abandoned", seconds)
    except Exception as exc:  # noqa: BLE001 - stopping a failed producer: nothing to add
        logger.debug("stopping a window producer failed: %r", exc)


def _append(batch: Any, o: Outgoing) -> object:
    """``batch.append`` of one outgoing record; ``None`` when the batch is full."""
    return batch.append(key=o.key, value=o.value, timestamp=o.timestamp_ms, headers=o.headers)


async def _send_changelog(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: list[tuple[bytes, bytes | None]],
) -> list[asyncio.Future[Any]]:
    send = producer.send
    return [await send(topic, value, key=key, partition=partition) for key, value in records]


class TransactionalCommitter:
    """Exactly-once commits: one transactional producer per assigned input partition."""

    def __init__(self, config: WindowedAggregationConfig, copies: CopySizes) -> None:
        self._config = config
        self._copies = copies
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self.aborted = 0
        self.unreachable = False

    async def open(self, tps: Sequence[TopicPartition]) -> None:
        await asyncio.gather(*(self._open_one(tp) for tp in tps if tp not in self._producers))

    async def _open_one(self, tp: TopicPartition) -> None:
        config = self._config
        producer = AIOKafkaProducer(
            **_producer_kwargs(
                config,
                self._copies,
                enable_idempotence=True,
                transactional_id=config.transactional_id(tp.topic, tp.partition),
                transaction_timeout_ms=config.transaction_timeout_ms,
            )
        )
        try:
            await start_with_backoff(
                producer.start,
                what=f"transactional producer for {tp.topic}[{tp.partition}]",
                bootstrap_servers=config.bootstrap_servers,
                deadline_s=config.connect_timeout_s,
                close=producer.stop,
            )
            # An empty transaction waits for InitProducerId: from here on, any earlier
            # owner of this transactional id is fenced and its open transaction aborted.
            await producer.begin_transaction()
            await producer.commit_transaction()
        except AIOKafkaError as exc:
            await producer.stop()
            raise UnsupportedByBroker(
                f"exactly-once windowed aggregation needs Kafka transactions, and the broker at "
                f"{config.bootstrap_servers} refused a transactional producer ({exc}); use "
                "processing_guarantee='at_least_once' (--guarantee at-least-once) on this broker"
            ) from exc
        except BaseException:
            await producer.stop()
            raise
        self._producers[tp] = producer

    async def close(self, tps: Sequence[TopicPartition]) -> None:
        producers = [self._producers.pop(tp) for tp in tps if tp in self._producers]
        await asyncio.gather(*(_stop_within(p, _CLEANUP_S) for p in producers))

    async def commit(self, tasks: Sequence[PartitionTask]) -> list[TopicPartition]:
        work = [t for t in tasks if t.has_work and t.tp in self._producers]
        results = await asyncio.gather(*(self._commit_one(t) for t in work), return_exceptions=True)
        self.unreachable = any(isinstance(r, TimeoutError) for r in results)
        failed: list[TopicPartition] = []
        for task, result in zip(work, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                logger.warning(
                    "transaction for %s[%d] failed (%r); its state is restored from the changelog",
                    task.tp.topic,
                    task.tp.partition,
                    result,
                )
                failed.append(task.tp)
        return failed

    async def _commit_one(self, task: PartitionTask) -> None:
        producer = self._producers[task.tp]
        config = self._config
        changelog = task.changelog()
        await producer.begin_transaction()
        try:
            async with asyncio.timeout(commit_deadline_s(config)):
                futures = await _send_all(producer, task)
                if changelog:
                    futures += await _send_changelog(
                        producer, config.changelog_topic, task.tp.partition, changelog
                    )
                await producer.send_offsets_to_transaction(
                    {task.tp: task.next_offset}, config.group_id
                )
                await producer.commit_transaction()
        except BaseException:
            self.aborted += 1
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLEANUP_S):
                    await producer.abort_transaction()
            await self.close([task.tp])  # a fenced or failed producer is not reused
            raise
        await asyncio.gather(*futures)
        task.committed()

    async def stop(self) -> None:
        await self.close(list(self._producers))


class AtLeastOnceCommitter:
    """At-least-once commits for brokers without transactions: one producer, three steps."""

    def __init__(
        self, config: WindowedAggregationConfig, consumer: AIOKafkaConsumer, copies: CopySizes
    ) -> None:
        self._config = config
        self._consumer = consumer
        self._copies = copies
        self._producer: AIOKafkaProducer | None = None
        self.unreachable = False

    async def open(self, tps: Sequence[TopicPartition]) -> None:
        if self._producer is None:
            self._producer = await self._start()

    async def _start(self) -> AIOKafkaProducer:
        config = self._config
        for idempotent in (True, False):
            producer = AIOKafkaProducer(
                **_producer_kwargs(config, self._copies, enable_idempotence=idempotent)
            )
            try:
                await start_with_backoff(
                    producer.start,
                    what="window output producer",
                    bootstrap_servers=config.bootstrap_servers,
                    deadline_s=config.connect_timeout_s,
                    close=producer.stop,
                )
                return producer
            except AIOKafkaError as exc:
                await producer.stop()
                if not idempotent:
                    raise KafkaError(f"the window output producer could not start: {exc}") from exc
                logger.warning(
                    "the broker at %s refused an idempotent producer (%s): window output is "
                    "written with acks=all WITHOUT idempotence; a retried send may be written twice",
                    config.bootstrap_servers,
                    exc,
                )
        raise AssertionError("unreachable")

    async def close(self, tps: Sequence[TopicPartition]) -> None:
        return None

    async def commit(self, tasks: Sequence[PartitionTask]) -> list[TopicPartition]:
        producer = self._producer
        work = [t for t in tasks if t.has_work]
        if producer is None or not work:
            return []
        config = self._config
        try:
            async with asyncio.timeout(commit_deadline_s(config)):
                futures: list[asyncio.Future[Any]] = []
                for task in work:
                    futures += await _send_all(producer, task)
                await asyncio.gather(*futures)
                futures = []
                for task in work:
                    records = task.changelog()
                    if records:
                        futures += await _send_changelog(
                            producer, config.changelog_topic, task.tp.partition, records
                        )
                await asyncio.gather(*futures)
                offsets = {t.tp: t.next_offset for t in work}
                if not await commit_offsets(self._consumer, offsets, group_id=config.group_id):
                    return [t.tp for t in work]  # their state is restored from the changelog
        except (AIOKafkaError, TimeoutError) as exc:
            self.unreachable = isinstance(exc, TimeoutError)
            logger.warning(
                "commit of %d partitions failed (%r); their state is restored from the "
                "changelog and uncommitted records are processed again",
                len(work),
                exc,
            )
            return [t.tp for t in work]
        self.unreachable = False
        for task in work:
            task.committed()
        return []

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_within(producer, _CLEANUP_S)
