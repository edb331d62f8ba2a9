"""``WindowProcessor``: windowed aggregation as a consumer-group member on aiokafka.

A façade over small parts: :class:`~consumers.member.GroupMember` (join, run loop,
rebalance listener, stop: the same member runtime as ``ConsumerService``), a
:class:`PartitionTask` per assigned partition (the pure :class:`WindowEngine`
inside; each record goes through :func:`consumers.intake.admit`, so re-drives for
other groups are skipped and undecodable records dead-lettered), a
:class:`Committer` (transactions, or at-least-once steps), and
:func:`restore_stores` for the changelog.

When a partition is assigned, before any of its records is processed:

1. the committer opens it: with transactions, the partition's producer starts, which
   fences the previous owner and aborts its open transaction;
2. its state is restored from its changelog partition (``read_committed``);
3. the consumer is moved to the later of the group's committed offset and the
   offset recorded with the state, so state and position agree.

Records are processed as they are fetched (synchronously, so a rebalance never sees
half a batch); every ``commit_interval_s``, and on revocation and stop, each task's
results are collected, alerts are published on the bus (at least once), and the
committer writes output, changelog and offsets. A partition whose commit fails is
dropped and prepared again from step 1, so its state is never ahead of Kafka.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Unpack

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from agent_events.agent_runtime.errors import KafkaError, UnsupportedByBroker
from agent_events.agent_runtime.event_bus import EventBus
from agent_events.consumers.copies import CopySizes
from agent_events.consumers.member import GroupMember
from agent_events.consumers.scan import standalone_consumer
from agent_events.consumers.windows.aggregations import Aggregations, Reducer, key_function
from agent_events.consumers.windows.codec import AggregateEncoder, WindowAggregateCodec
from agent_events.consumers.windows.commit import (
    AtLeastOnceCommitter,
    Committer,
    TransactionalCommitter,
)
from agent_events.consumers.windows.config import (
    ProcessingGuarantee,
    WindowedAggregationConfig,
    WindowOptions,
)
from agent_events.consumers.windows.definitions import SessionWindow, SlidingWindow
from agent_events.consumers.windows.engine import WindowEngine
from agent_events.consumers.windows.metrics import WindowMetrics
from agent_events.consumers.windows.rekey import RekeyTask
from agent_events.consumers.windows.state import WindowStore, restore_stores
from agent_events.consumers.windows.tasks import AggregateTask, PartitionTask, TaskCounters
from agent_events.consumers.windows.topics import ensure_window_topics
from agent_events.schemas.codec import EventCodec
from agent_events.schemas.registry import make_event_codec
from agent_events.transport import DEFAULT_MAX_MESSAGE_BYTES, backend_for

__all__ = ["WindowProcessor"]

logger = logging.getLogger(__name__)


class WindowProcessor(GroupMember):
    """Aggregates ``config.topics`` into windows as group ``config.group_id``.

    ``reducers`` add user-defined aggregates; ``output_codec`` writes the results
    (default: ``WindowAggregate`` records; :class:`~.summary.SessionSummaryCodec` writes
    session summaries); ``alert_bus`` receives threshold
    alerts (``config.alert_threshold``) as events, at least once (their ids are
    deterministic, so duplicates can be dropped). Use ``async with`` and
    :meth:`run`; :meth:`request_stop` ends the run after a final commit.
    """

    def __init__(
        self,
        config: WindowedAggregationConfig | None = None,
        *,
        reducers: Iterable[Reducer[Any]] = (),
        alert_bus: EventBus | None = None,
        event_codec: EventCodec | None = None,
        output_codec: AggregateEncoder | None = None,
        **options: Unpack[WindowOptions],
    ) -> None:
        config = WindowedAggregationConfig.with_overrides(config, options)
        super().__init__(group_id=config.group_id, commit_interval_s=config.commit_interval_s)
        self.config = config
        self.aggregations = Aggregations(
            reducers, need_merge=isinstance(config.definition, SlidingWindow | SessionWindow)
        )
        self.alert_bus = alert_bus
        self._event_codec = event_codec or make_event_codec(
            config.value_format, config.schema_registry_url
        )
        codec = self._event_codec
        self._prepare_value = codec.prepare if codec.needs_prepare else None
        self._output_codec = output_codec or WindowAggregateCodec()
        self._key_of = key_function(config.key_fields)
        self._counters = TaskCounters()
        self._metrics = WindowMetrics()
        self._tasks: dict[TopicPartition, PartitionTask] = {}
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._committer: Committer | None = None
        self._failure: BaseException | None = None
        self._since_commit = 0
        self.guarantee: ProcessingGuarantee | None = None
        """What this run guarantees, once started: exactly_once or at_least_once."""
        self._sources: frozenset[str] = frozenset()
        self._partitions = 0
        self._copies = CopySizes(DEFAULT_MAX_MESSAGE_BYTES, {})
        self._unprepared: set[TopicPartition] = set()
        """Assigned partitions whose restore failed after a failed commit (paused)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create missing topics, check transactions, join the group."""
        config = self.config
        stack = AsyncExitStack()
        try:
            self._reader = await stack.enter_async_context(
                standalone_consumer(config.connection(), fetch_max_wait_ms=100)
            )
            layout = await ensure_window_topics(config, self._reader)
            self._sources, self._partitions = layout.sources, layout.partitions
            self._copies = layout.copies
            consumer = backend_for(config).consumer(config, (), config.consumer_kwargs())
            committer = await self._choose_committer(consumer)
            self._committer = committer
            stack.push_async_callback(committer.stop)
            await self._join(
                consumer,
                config.consumed_topics,
                what=f"window processor {config.group_id}",
                connection=config,
            )
            stack.push_async_callback(consumer.stop)
        except BaseException:
            self._consumer = None
            await stack.aclose()
            raise
        self._stack = stack

    async def _choose_committer(self, consumer: AIOKafkaConsumer) -> Committer:
        """Transactions for ``exactly_once`` (checked now, not at the first assignment);
        ``auto`` falls back to at-least-once, loudly, on a broker without them."""
        config = self.config
        if config.processing_guarantee != "at_least_once":
            committer = TransactionalCommitter(config, self._copies)
            probe = TopicPartition(config.changelog_topic, -1)
            try:
                await committer.open([probe])
            except UnsupportedByBroker as exc:
                if config.processing_guarantee == "exactly_once":
                    raise
                logger.warning(
                    "group %s: %s. Running AT LEAST ONCE: after a crash, windows may be "
                    "emitted twice and count events twice",
                    config.group_id,
                    exc,
                )
            else:
                await committer.close([probe])
                self.guarantee = "exactly_once"
                return committer
        self.guarantee = "at_least_once"
        return AtLeastOnceCommitter(config, consumer, self._copies)

    async def _close(self) -> None:
        stack, self._stack = self._stack, None
        self._consumer = None
        self._tasks.clear()
        if stack is not None:
            await stack.aclose()

    # ------------------------------------------------------------------ the member's steps

    def _max_records(self) -> int | None:
        return self.config.max_poll_records

    async def _take(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, Any]) -> None:
        prepare = self._prepare_value
        if prepare is not None:
            # A registry codec fetches writer schemas it has not seen before the batch is
            # processed; a partition revoked meanwhile has no task below, and is skipped.
            for records in batch.values():
                for record in records:
                    await prepare(record.value)
        tasks = self._tasks
        for tp, records in batch.items():
            task = tasks.get(tp)
            if task is not None:  # None: not restored yet, or given up
                task.process(records)
                self._since_commit += len(records)

    def _commit_due(self) -> bool:
        return super()._commit_due() or self._since_commit >= self.config.max_pending_records

    async def _commit_due_work(self) -> None:
        async with self._lock:
            await self._commit(list(self._tasks.values()))
            if self._unprepared and not self._stop_requested.is_set():
                await self._prepare_again(sorted(self._unprepared))

    async def _finish(self) -> None:
        committer = self._committer
        if committer is not None and committer.unreachable:
            logger.warning(
                "group %s: the broker is unreachable; stopping without a final commit "
                "(what it would have written is redone from the last commit on restart)",
                self.config.group_id,
            )
            return
        await self._commit_due_work()

    # ------------------------------------------------------------------ observation

    def metrics_snapshot(self) -> WindowMetrics:
        """Counters since start plus the current size of the state (cheap; call any time)."""
        m, c = self._metrics, self._counters
        m.events, m.late_events, m.dead_lettered = c.processed, c.late, c.dead_lettered
        m.redrives_skipped = c.skipped_redrives
        m.windows_emitted, m.updates_emitted, m.alerts = (
            c.windows_emitted,
            c.updates_emitted,
            c.alerts,
        )
        engines = [t.engine for t in self._tasks.values() if isinstance(t, AggregateTask)]
        m.open_windows = sum(e.open_windows for e in engines)
        m.state_entries = sum(len(e.store) for e in engines)
        return dataclasses.replace(m)

    @property
    def assignment(self) -> set[TopicPartition]:
        """Partitions this member processes now (restored and ready)."""
        return set(self._tasks)

    # ------------------------------------------------------------------ internals

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _aggregates(self, tp: TopicPartition) -> bool:
        return not self.config.repartitions or tp.topic == self.config.repartition_topic

    async def _prepare(self, tps: Sequence[TopicPartition]) -> None:
        """Steps 1-3 of the module docstring for newly assigned (or failed) partitions."""
        consumer, reader, committer = self._require_started(), self._reader, self._committer
        assert reader is not None
        assert committer is not None
        config = self.config
        await committer.open(tps)
        stores = {
            TopicPartition(config.changelog_topic, tp.partition): WindowStore(self.aggregations)
            for tp in tps
        }
        report = await restore_stores(reader, stores, deadline_s=config.restore_deadline_s)
        m = self._metrics
        m.restores += 1
        m.restore_seconds_total += report.seconds
        m.last_restore_seconds = report.seconds
        m.restored_records += report.records
        logger.info(
            "group %s: restored %d changelog partitions (%d records) in %.2fs",
            config.group_id,
            len(stores),
            report.records,
            report.seconds,
        )
        committed = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
        reset = (
            consumer.beginning_offsets
            if config.auto_offset_reset == "earliest"
            else consumer.end_offsets
        )
        for tp, offset in zip(tps, committed, strict=True):
            store = stores[TopicPartition(config.changelog_topic, tp.partition)]
            if self._aggregates(tp):
                watermark, recorded = None, store.next_offset
            else:
                watermark, recorded = store.upstream.get(f"{tp.topic}:{tp.partition}", (None, None))
            known = [o for o in (offset, recorded) if o is not None]
            position = max(known) if known else (await reset([tp]))[tp]
            consumer.seek(tp, position)
            self._tasks[tp] = self._new_task(
                tp, position, store if self._aggregates(tp) else None, watermark
            )

    def _new_task(
        self,
        tp: TopicPartition,
        position: int,
        store: WindowStore | None,
        watermark: int | None,
    ) -> PartitionTask:
        config = self.config
        if store is None:
            task: PartitionTask = RekeyTask(
                tp,
                position,
                config,
                self._event_codec,
                self._key_of,
                targets=self._partitions,
                watermark=watermark,
            )
        else:
            engine = WindowEngine(
                config.definition,
                self.aggregations,
                store,
                key_of=self._key_of,
                threshold=config.alert_threshold,
                emit_on_update=config.emit_on_update,
                auto_watermark=not config.repartitions,
            )
            task = AggregateTask(
                tp,
                position,
                config,
                self._event_codec,
                self._key_of,
                engine,
                self._output_codec,
                sources=self._sources if config.repartitions else None,
            )
        task.counters = self._counters
        task.copies = self._copies
        return task

    async def _commit(self, tasks: list[PartitionTask], *, prepare_failed: bool = True) -> None:
        self._committing()
        self._since_commit = 0
        committer = self._committer
        if committer is None or not tasks:
            return
        for task in tasks:
            if isinstance(task, RekeyTask):
                task.caught_up = await self._caught_up(task.tp)
            task.collect()
        if self.alert_bus is not None:
            for task in tasks:
                for alert in task.take_alerts():
                    await self.alert_bus.publish(alert)
        with_work = sum(1 for t in tasks if t.has_work)
        failed = await committer.commit(tasks)
        self._metrics.commits += with_work - len(failed)
        if not failed:
            return
        self._metrics.commit_failures += len(failed)
        for tp in failed:
            self._tasks.pop(tp, None)
        await committer.close(failed)
        consumer = self._consumer
        again = [tp for tp in failed if consumer is not None and tp in consumer.assignment()]
        if prepare_failed and again:
            await self._prepare_again(again)

    async def _prepare_again(self, tps: list[TopicPartition]) -> None:
        """Restore partitions whose commit (or preparation) failed; see :meth:`_prepare_or_wait`."""
        consumer = self._consumer
        if consumer is None:
            return
        tps = [tp for tp in tps if tp in consumer.assignment()]
        consumer.pause(*tps)
        if self._stop_requested.is_set():  # stopping: not worth a restore
            self._unprepared.update(tps)
            return
        if await self._prepare_or_wait(tps, "after a failed commit"):
            consumer.resume(*(tp for tp in tps if tp in consumer.assignment()))

    async def _prepare_or_wait(self, tps: list[TopicPartition], when: str) -> bool:
        """Prepare ``tps``; while the broker is unreachable they wait (paused, no task) and
        are tried again at the next commit, and the member stays. ``False`` if they wait."""
        try:
            await self._prepare(tps)
        except (KafkaError, AIOKafkaError) as exc:
            for tp in tps:
                self._tasks.pop(tp, None)
            self._unprepared.update(tps)
            logger.warning(
                "group %s: could not restore %d partitions %s (%s); trying again at the next commit",
                self.config.group_id,
                len(tps),
                when,
                exc,
            )
            return False
        self._unprepared.difference_update(tps)
        return True

    async def _caught_up(self, tp: TopicPartition) -> bool:
        """Whether the consumer has read ``tp`` to its end, as the last fetch saw it."""
        consumer = self._consumer
        if consumer is None or tp not in consumer.assignment():
            return False
        end = consumer.last_stable_offset(tp)
        if end is None or end < 0:
            end = consumer.highwater(tp)
        return end is not None and await consumer.position(tp) >= end

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            tasks = [self._tasks[tp] for tp in sorted(revoked) if tp in self._tasks]
            try:
                await self._commit(tasks, prepare_failed=False)
            finally:
                for task in tasks:
                    self._tasks.pop(task.tp, None)
                self._unprepared.difference_update(revoked)
                if self._committer is not None:
                    await self._committer.close(sorted(revoked))

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        # aiokafka fetches new partitions while this listener runs; their records would
        # be dropped (no task yet) and fetched again after the seek: wait instead.
        consumer = self._consumer
        if consumer is not None and assigned:
            consumer.pause(*assigned)
        tps = sorted(assigned)
        async with self._lock:
            try:
                await self._prepare_or_wait(tps, "after an assignment")
            except Exception as exc:  # aiokafka would only log it: stop the run instead
                logger.exception("group %s: preparing %s failed", self.config.group_id, assigned)
                self._failure = exc
                self.request_stop()
            finally:
                if consumer is not None:
                    consumer.resume(
                        *(
                            tp
                            for tp in tps
                            if tp in consumer.assignment() and tp not in self._unprepared
                        )
                    )
