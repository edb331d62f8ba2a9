"""``ConsumerService``: a consumer-group member running handlers at least once.

A façade over small parts: :class:`PartitionWorker` (ordering),
:class:`OffsetTracker` (what may be committed), :class:`RecordProcessor`
(decode -> dispatch -> retry -> dead-letter) and :class:`DeadLetterPublisher`.

The fetch loop never waits on handlers: it keeps polling (so the member stays in
the group however slow a handler is) and pauses a partition whose worker holds
``max_buffered_per_partition`` unfinished records, resuming it at half of that.

Commits, in this order, every ``commit_interval_s`` and at every boundary:

1. a record is *done* once every handler finished it or its dead letter was
   acknowledged;
2. per partition, the committable offset is one past the longest done prefix;
3. that offset is committed to the group.

On revocation, records not yet started are dropped, in-flight ones get up to
``drain_timeout_s`` to finish, and the done prefix is committed before the
partition is given up. ``stop()`` (and SIGTERM in the CLI) finishes every fetched
record the same way, commits, then leaves the group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from agent_events.agent_runtime.errors import ConfigError, KafkaError
from agent_events.agent_runtime.event_bus import EventBus, Handler
from agent_events.agent_runtime.events import EventType, EventTypeLike
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.consumers.config import ConsumerConfig
from agent_events.consumers.dlq import DeadLetterPublisher
from agent_events.consumers.processing import ProcessingObserver, RecordProcessor
from agent_events.consumers.worker import PartitionWorker
from agent_events.producers.connect import start_with_backoff
from agent_events.schemas.codec import EventCodec

__all__ = ["ConsumerService", "HandlerSpec"]

logger = logging.getLogger(__name__)

HandlerSpec = Handler | tuple[EventTypeLike, Handler]


class ConsumerService(AsyncResource):
    """Consume ``config.topics`` as group ``config.group_id`` into the given handlers.

    ``handlers`` are the same objects an in-process :class:`EventBus` runs: a bare
    handler receives every event (``EventType.ANY``), an ``(event_type, handler)``
    pair only that type. Alternatively pass a ready ``bus``.
    """

    def __init__(
        self,
        config: ConsumerConfig | None = None,
        *,
        handlers: Iterable[HandlerSpec] = (),
        bus: EventBus | None = None,
        codec: EventCodec | None = None,
        observer: ProcessingObserver | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = ConsumerConfig(**overrides)
        elif overrides:
            config = ConsumerConfig.model_validate({**config.model_dump(), **overrides})
        self.config = config
        self._handlers = list(handlers)
        if bus is not None and self._handlers:
            raise ConfigError("pass either handlers or a bus, not both")
        self.bus = bus or EventBus(handler_timeout=config.handler_timeout_s)
        self._codec = codec
        self._observer = observer
        self._consumer: AIOKafkaConsumer | None = None
        self._dead_letters: DeadLetterPublisher | None = None
        self._processor: RecordProcessor | None = None
        self._workers: dict[TopicPartition, PartitionWorker] = {}
        self._paused: set[TopicPartition] = set()
        self._stop_requested = asyncio.Event()
        self._running = False
        self._run_finished = asyncio.Event()
        self._run_finished.set()
        self._last_commit = 0.0
        self.rebalances = 0
        self.commits = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Subscribe the handlers, start the DLQ producer and join the group."""
        for spec in self._handlers:
            event_type, handler = spec if isinstance(spec, tuple) else (EventType.ANY, spec)
            await self.bus.subscribe(event_type, handler)
        self._handlers.clear()
        if self.config.dlq_topic is not None:
            self._dead_letters = DeadLetterPublisher(
                self.config,
                self.config.dlq_topic,
                retry_backoff_max_s=self.config.retry_backoff_max_s,
            )
            await self._dead_letters.start()
        self._processor = RecordProcessor(
            self.bus, self.config, self._dead_letters, codec=self._codec, observer=self._observer
        )
        consumer = AIOKafkaConsumer(**self.config.consumer_kwargs())
        consumer.subscribe(self.config.topics, listener=_Rebalance(self))
        try:
            await start_with_backoff(
                consumer.start,
                what=f"consumer group {self.config.group_id}",
                bootstrap_servers=self.config.bootstrap_servers,
                deadline_s=self.config.connect_timeout_s,
            )
        except BaseException:
            await consumer.stop()
            if self._dead_letters is not None:
                await self._dead_letters.stop()
            raise
        self._consumer = consumer

    async def run(self) -> None:
        """Fetch and handle records until :meth:`request_stop`; then drain and commit."""
        consumer = self._require_started()
        self._running = True
        self._run_finished.clear()
        try:
            while not self._stop_requested.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                assignment = consumer.assignment()
                for tp, records in batch.items():
                    if tp in assignment:
                        self._worker_for(tp).submit(records)
                self._check_workers()
                self._apply_backpressure(consumer)
                if time.monotonic() - self._last_commit >= self.config.commit_interval_s:
                    await self._commit(self._workers.values())
            await self._close_workers(list(self._workers), finish_queued=True)
        finally:
            self._running = False
            self._run_finished.set()

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish: handle what was fetched, commit, return.

        Safe to call from a signal handler on the loop.
        """
        self._stop_requested.set()

    async def stop(self) -> None:
        """Stop running (draining and committing), leave the group, close clients."""
        self.request_stop()
        await self._run_finished.wait()
        if self._workers:
            await self._close_workers(list(self._workers), finish_queued=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        if self._dead_letters is not None:
            await self._dead_letters.stop()
            self._dead_letters = None
        await self.bus.stop()

    # ------------------------------------------------------------------ state

    @property
    def processor(self) -> RecordProcessor:
        if self._processor is None:
            raise KafkaError("the consumer service is not started")
        return self._processor

    @property
    def assignment(self) -> set[TopicPartition]:
        """Partitions this member owns now."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    # ------------------------------------------------------------------ internals

    def _require_started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise KafkaError(
                "the consumer service is not started; use 'async with' or await start()"
            )
        return self._consumer

    def _worker_for(self, tp: TopicPartition) -> PartitionWorker:
        worker = self._workers.get(tp)
        if worker is None:
            assert self._processor is not None
            worker = self._workers[tp] = PartitionWorker(
                tp, self._processor, self.config.ordering, self.config.max_concurrent_keys
            )
        return worker

    def _check_workers(self) -> None:
        for running in self._workers.values():
            if running.failure is not None:
                raise KafkaError(
                    f"processing of {running.tp.topic}[{running.tp.partition}] failed unexpectedly: "
                    f"{running.failure!r}"
                ) from running.failure

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        high = self.config.max_buffered_per_partition
        for tp, worker in self._workers.items():
            if tp not in self._paused and worker.pending >= high:
                consumer.pause(tp)
                self._paused.add(tp)
            elif tp in self._paused and worker.pending <= high // 2:
                consumer.resume(tp)
                self._paused.discard(tp)

    async def _commit(self, workers: Iterable[PartitionWorker]) -> None:
        self._last_commit = time.monotonic()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for worker in workers:
            offset = worker.tracker.committable()
            if offset is not None:
                offsets[worker.tp] = OffsetAndMetadata(offset, "")
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            logger.warning(
                "commit of %d partitions failed (%s); they will be redelivered", len(offsets), exc
            )
            return
        except AIOKafkaError as exc:
            logger.error(
                "commit failed: %s; records since the last commit will be redelivered", exc
            )
            return
        self.commits += 1
        for tp, meta in offsets.items():
            owner = self._workers.get(tp)
            if owner is not None:
                owner.tracker.committed(meta.offset)

    async def _close_workers(self, tps: list[TopicPartition], *, finish_queued: bool) -> None:
        workers = [self._workers[tp] for tp in tps if tp in self._workers]
        await asyncio.gather(
            *(
                w.close(finish_queued=finish_queued, deadline_s=self.config.drain_timeout_s)
                for w in workers
            )
        )
        await self._commit(workers)
        for worker in workers:
            self._workers.pop(worker.tp, None)
            self._paused.discard(worker.tp)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalances += 1
        await self._close_workers(
            [tp for tp in revoked if tp in self._workers], finish_queued=False
        )

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._paused.intersection_update(assigned)
        logger.info(
            "group %s: assigned %s",
            self.config.group_id,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing",
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits the done prefix of revoked partitions before they are given up."""

    def __init__(self, service: ConsumerService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._service._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._service._on_assigned(set(assigned))
