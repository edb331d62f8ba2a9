"""``ConsumerService``: a consumer-group member running handlers at least once.

A façade over small parts: :class:`GroupMember` (join, run loop, rebalance
listener, stop, offset commit: shared with the window processor),
:class:`PartitionWorker` (ordering), :class:`OffsetTracker` (what may be
committed), :class:`RecordProcessor` (re-drive filter and decode -> DLQ from
:mod:`consumers.intake`, then dispatch -> retry -> dead-letter) and
:class:`DeadLetterPublisher`.

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

Fencing (:class:`GroupMember`): after an event-loop stall longer than
``session_timeout_ms - heartbeat_interval_ms`` or a commit rejected for a stale
generation, records not started are dropped on every partition, every partition is
paused, and fetched records are not submitted. In-flight records finish. When the
coordinator confirms the membership, the workers are closed (their done prefix
committed) and each partition is sought back to its first record not done; after a
rebalance the positions come from the committed offsets anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Unpack

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import ConfigError, KafkaError
from agent_events.agent_runtime.event_bus import EventBus, Handler
from agent_events.agent_runtime.events import EventType, EventTypeLike
from agent_events.consumers.config import ConsumerConfig, ConsumerOptions
from agent_events.consumers.dlq import DeadLetterPublisher
from agent_events.consumers.member import GroupMember, commit_offsets
from agent_events.consumers.processing import ProcessingObserver, RecordProcessor
from agent_events.consumers.worker import PartitionWorker
from agent_events.schemas.codec import EventCodec
from agent_events.transport import backend_for

__all__ = ["ConsumerService", "HandlerSpec"]

logger = logging.getLogger(__name__)

HandlerSpec = Handler | tuple[EventTypeLike, Handler]


class ConsumerService(GroupMember):
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
        **options: Unpack[ConsumerOptions],
    ) -> None:
        config = ConsumerConfig.with_overrides(config, options)
        super().__init__(
            group_id=config.group_id,
            commit_interval_s=config.commit_interval_s,
            stall_limit_s=(config.session_timeout_ms - config.heartbeat_interval_ms) / 1000,
        )
        self.config = config
        self._handlers = list(handlers)
        if bus is not None and self._handlers:
            raise ConfigError("pass either handlers or a bus, not both")
        self.bus = bus or EventBus(handler_timeout=config.handler_timeout_s)
        self._codec = codec
        self._observer = observer
        self._dead_letters: DeadLetterPublisher | None = None
        self._processor: RecordProcessor | None = None
        self._workers: dict[TopicPartition, PartitionWorker] = {}
        self._paused: set[TopicPartition] = set()
        self._refetch: dict[TopicPartition, int] = {}
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
                sources=self.config.topics,
                retry_backoff_max_s=self.config.retry_backoff_max_s,
            )
            await self._dead_letters.start()
        self._processor = RecordProcessor(
            self.bus, self.config, self._dead_letters, codec=self._codec, observer=self._observer
        )
        try:
            await self._join(
                backend_for(self.config).consumer(
                    self.config, tuple(self.config.topics), self.config.consumer_kwargs()
                ),
                self.config.topics,
                what=f"consumer group {self.config.group_id}",
                connection=self.config,
            )
        except BaseException:
            if self._dead_letters is not None:
                await self._dead_letters.stop()
            raise

    async def _close(self) -> None:
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

    # ------------------------------------------------------------------ the member's steps

    async def _take(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, Any]) -> None:
        if not self.may_start():
            for tp, records in batch.items():
                if records:
                    self._dropped(tp, records[0].offset)
            return
        assignment = consumer.assignment()
        for tp, records in batch.items():
            if tp in assignment:
                self._worker_for(tp).submit(records)
        self._raise_failure()
        self._apply_backpressure(consumer)

    def _fenced_now(self) -> None:
        for tp, worker in self._workers.items():
            first = worker.fence()
            if first is not None:
                self._dropped(tp, first)
        if self._consumer is not None:
            self._consumer.pause(*self._consumer.assignment())

    async def _unfence(self, consumer: AIOKafkaConsumer) -> None:
        workers = list(self._workers.values())
        await self._close_workers([w.tp for w in workers], finish_queued=False)
        for worker in workers:
            first = worker.tracker.first_pending()
            if first is not None:
                self._dropped(worker.tp, first)
        if self.fenced:  # the commit of the done prefix was rejected meanwhile
            return
        refetch, self._refetch = self._refetch, {}
        assignment = consumer.assignment()
        for tp, offset in refetch.items():
            if tp in assignment:
                consumer.seek(tp, offset)
        consumer.resume(*assignment)
        self._paused.clear()

    def _dropped(self, tp: TopicPartition, offset: int) -> None:
        """Remember the lowest offset of ``tp`` dropped while fenced (to fetch it again)."""
        self._refetch[tp] = min(offset, self._refetch.get(tp, offset))

    async def _commit_due_work(self) -> None:
        await self._commit(self._workers.values())

    async def _finish(self) -> None:
        await self._close_workers(list(self._workers), finish_queued=True)

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        await self._close_workers(
            [tp for tp in revoked if tp in self._workers], finish_queued=False
        )

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        self._paused.intersection_update(assigned)
        self._refetch.clear()  # a new generation starts from the committed offsets
        logger.info(
            "group %s: assigned %s",
            self.config.group_id,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing",
        )

    def _raise_failure(self) -> None:
        for running in self._workers.values():
            if running.failure is not None:
                raise KafkaError(
                    f"processing of {running.tp.topic}[{running.tp.partition}] failed unexpectedly: "
                    f"{running.failure!r}"
                ) from running.failure

    # ------------------------------------------------------------------ internals

    def _worker_for(self, tp: TopicPartition) -> PartitionWorker:
        worker = self._workers.get(tp)
        if worker is None:
            assert self._processor is not None
            worker = self._workers[tp] = PartitionWorker(
                tp,
                self._processor,
                self.config.ordering,
                self.config.max_concurrent_keys,
                may_start=self.may_start,
            )
        return worker

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
        self._committing()
        offsets: dict[TopicPartition, int] = {}
        for worker in workers:
            offset = worker.tracker.committable()
            if offset is not None:
                offsets[worker.tp] = offset
        if not offsets or self._consumer is None:
            return
        if not await commit_offsets(
            self._consumer,
            offsets,
            group_id=self.config.group_id,
            on_lost=self._fence,
            deadline_s=self.config.request_timeout_ms / 1000,
        ):
            return
        self.commits += 1
        for tp, offset in offsets.items():
            owner = self._workers.get(tp)
            if owner is not None:
                owner.tracker.committed(offset)

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
