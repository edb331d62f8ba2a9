"""librdkafka's group consumer with the asyncio face of the AIOKafkaConsumer calls ours make.

The subset :class:`~agent_events.consumers.member.GroupMember` and
:class:`~agent_events.consumers.ConsumerService` use: ``subscribe`` with a rebalance
listener, ``start``/``stop``, ``getmany``, ``assignment``, ``pause``/``resume``, ``seek``
and ``commit``, with aiokafka's ``TopicPartition`` and records on our side.

* **Fetching.** librdkafka's ``consume()`` blocks, so it runs on one worker thread (as
  Quix Streams runs it): :meth:`ConfluentConsumer.getmany` awaits it without blocking the
  loop, then turns the messages into aiokafka records on the loop (the thread does only
  the blocking call). Heartbeats run on librdkafka's own threads, so a slow event loop
  does not cost the membership; only ``max_poll_interval_ms`` between fetches does.
* **Rebalance safety.** librdkafka runs the rebalance callbacks inside ``consume()``, on
  the worker thread. A revocation blocks that thread until the listener's
  ``on_partitions_revoked`` (drain and commit) has finished on the event loop
  (``run_coroutine_threadsafe(...).result()``); only then does librdkafka give the
  partitions up. Assignment is cooperative-sticky: a rebalance revokes only the
  partitions that move, the others keep running. The listener sees the whole new
  assignment in ``on_partitions_assigned``, as with aiokafka. :meth:`assignment` changes
  only on the loop, inside those steps, so a batch is never checked against a half-made
  change.
* **Commits** are synchronous ``commit(offsets=...)`` calls on a worker thread; nothing
  is committed automatically (``enable.auto.commit`` and ``enable.auto.offset.store``
  are off).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from aiokafka.errors import CommitFailedError, KafkaConnectionError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from confluent_kafka import Consumer, KafkaException  # type: ignore[import-untyped]
from confluent_kafka import TopicPartition as RdTopicPartition

from agent_events.agent_runtime.errors import ConfigError
from agent_events.transport._confluent import aiokafka_error, probe_broker

__all__ = ["ConfluentConsumer"]

logger = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]

_CLOSE_TIMEOUT_S = 30.0


class ConfluentConsumer:
    """A librdkafka group member for one event loop (module docstring)."""

    heartbeats_off_loop = True
    """Heartbeats do not run on the event loop: a stalled loop does not lose the group."""
    incremental_rebalance = True
    """A rebalance may keep some partitions: their positions are not reset by it."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        bootstrap_servers: str,
        probe_s: float,
        max_poll_records: int,
    ) -> None:
        self._config = config
        self._bootstrap_servers = bootstrap_servers
        self._probe_s = probe_s
        self._max_poll_records = max_poll_records
        self._topics: list[str] = []
        self._listener: Any = None
        self._consumer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetcher: concurrent.futures.ThreadPoolExecutor | None = None
        self._fetch: asyncio.Future[list[Any]] | None = None
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._closing = False
        self._tps: dict[tuple[str, int], TopicPartition] = {}

    # ------------------------------------------------------------------ lifecycle

    def subscribe(self, topics: Iterable[str], listener: Any = None) -> None:
        """Remember the topics and the rebalance listener; subscribes in :meth:`start`."""
        self._topics = list(topics)
        self._listener = listener

    async def start(self) -> None:
        """Build the client, check a broker answers, subscribe (the group is joined on fetch).

        Raises aiokafka's ``KafkaConnectionError`` (retried by the start backoff) when
        no broker answers.
        """
        try:
            consumer = Consumer(self._config)
        except KafkaException as exc:
            raise ConfigError(f"librdkafka refused the consumer settings: {exc}") from None
        try:
            await asyncio.to_thread(probe_broker, consumer, self._probe_s)
        except KafkaException as exc:
            await asyncio.to_thread(consumer.close)
            raise KafkaConnectionError(
                f"no broker answered at {self._bootstrap_servers}: {exc.args[0].str()}"
            ) from None
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._consumer = consumer
        self._fetcher = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="agent-events-rdkafka-consume"
        )
        if self._topics:
            consumer.subscribe(
                self._topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )

    async def stop(self) -> None:
        """Leave the group and close; the listener is not called for this last revocation.

        Does not commit: commit what was processed before stopping (as with aiokafka).
        """
        consumer, fetcher = self._consumer, self._fetcher
        if consumer is None or fetcher is None:
            return
        self._closing = True
        self._consumer = None
        self._fetcher = None
        self._fetch = None
        try:
            await asyncio.get_running_loop().run_in_executor(fetcher, consumer.close)
        finally:
            fetcher.shutdown(wait=False)
            self._assignment = frozenset()

    # ------------------------------------------------------------------ fetching

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch:
        """Records fetched within ``timeout_ms``, by partition, in offset order.

        A fetch whose caller was cancelled is not lost: the next call returns its records.
        """
        if partitions:
            raise ConfigError("client='confluent' fetches the whole assignment only")
        consumer, fetcher = self._require_started()
        limit = max_records or self._max_poll_records
        fetch = self._fetch
        if fetch is None:
            fetch = self._start_fetch(consumer, fetcher, limit, timeout_ms)
        try:
            messages = await asyncio.shield(fetch)
        except asyncio.CancelledError:
            raise  # the fetch goes on: its records are the next call's
        except BaseException:
            self._fetch = None
            raise
        self._fetch = None
        return self._by_partition(messages)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now."""
        return set(self._assignment)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching ``partitions`` (records already fetched may still arrive once)."""
        self._pause_or_resume("pause", partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch ``partitions`` again."""
        self._pause_or_resume("resume", partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next (records fetched before are discarded)."""
        consumer, _ = self._require_started()
        self._seek(consumer, partition, offset)

    # ------------------------------------------------------------------ commits

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int]) -> None:
        """Commit ``offsets`` (the next offset to read) and wait for the coordinator's answer.

        Raises ``CommitFailedError`` when the group says this is not its member of this
        generation, another aiokafka error when the commit failed otherwise.
        """
        consumer, _ = self._require_started()
        commits = [
            RdTopicPartition(
                tp.topic, tp.partition, o.offset if isinstance(o, OffsetAndMetadata) else o
            )
            for tp, o in offsets.items()
        ]
        await asyncio.to_thread(self._commit, consumer, commits)

    async def still_a_member(self) -> bool:
        """Whether the coordinator accepts this member's commits in its current generation.

        librdkafka keeps the generation to itself, so the probe is a commit of the
        offsets already committed for the assignment (changing nothing), which the
        coordinator checks exactly as it checks a heartbeat. ``False`` when nothing is
        committed yet (then a rebalance confirms the membership).
        """
        consumer, _ = self._require_started()
        assigned = [RdTopicPartition(tp.topic, tp.partition) for tp in self._assignment]
        if not assigned:
            return False
        try:
            committed = await asyncio.to_thread(
                consumer.committed, assigned, self._config["socket.timeout.ms"] / 1000
            )
            again = [tp for tp in committed if tp.error is None and tp.offset >= 0]
            if not again:
                return False
            await asyncio.to_thread(self._commit, consumer, again)
        except (KafkaException, CommitFailedError, KafkaConnectionError):
            return False
        except Exception:  # noqa: BLE001 - any other answer is not a confirmation
            return False
        return True

    # ------------------------------------------------------------------ on the worker threads

    def _start_fetch(
        self,
        consumer: Any,
        fetcher: concurrent.futures.ThreadPoolExecutor,
        limit: int,
        timeout_ms: int,
    ) -> asyncio.Future[list[Any]]:
        fetch = asyncio.get_running_loop().run_in_executor(
            fetcher, self._consume, consumer, limit, timeout_ms / 1000
        )
        self._fetch = fetch
        return fetch

    @staticmethod
    def _consume(consumer: Any, max_records: int, timeout_s: float) -> list[Any]:
        try:
            messages: list[Any] = consumer.consume(max_records, timeout_s)
        except KafkaException as exc:
            raise aiokafka_error(exc) from None
        return messages

    def _by_partition(self, messages: list[Any]) -> Batch:
        """librdkafka's messages as aiokafka's records, by partition (on the loop)."""
        batch: Batch = {}
        tps = self._tps
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise aiokafka_error(error)
                logger.warning("consumer: %s", error)
                continue
            topic, partition = message.topic(), message.partition()
            tp = tps.get((topic, partition))
            if tp is None:
                tp = tps[topic, partition] = TopicPartition(topic, partition)
            key, value = message.key(), message.value()
            timestamp_type, timestamp = message.timestamp()
            record = ConsumerRecord(
                topic,
                partition,
                message.offset(),
                timestamp,
                max(timestamp_type - 1, 0),
                key,
                value,
                None,
                len(key) if key is not None else -1,
                len(value) if value is not None else -1,
                message.headers() or [],
            )
            records = batch.get(tp)
            if records is None:
                batch[tp] = [record]
            else:
                records.append(record)
        return batch

    @staticmethod
    def _commit(consumer: Any, commits: list[Any]) -> None:
        try:
            results = consumer.commit(offsets=commits, asynchronous=False)
        except KafkaException as exc:
            raise aiokafka_error(exc) from None
        for result in results or ():
            if result.error is not None:
                raise aiokafka_error(result.error)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """On the fetch thread: the listener sees the whole assignment before any fetch."""
        added = {TopicPartition(p.topic, p.partition) for p in partitions}

        async def assigned() -> None:
            self._assignment = self._assignment | added
            if self._listener is not None:
                await self._listener.on_partitions_assigned(set(self._assignment))

        self._on_loop(assigned(), "on_partitions_assigned")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """On the fetch thread: give the partitions up only after the listener committed."""
        revoked = {TopicPartition(p.topic, p.partition) for p in partitions}

        async def revoking() -> None:
            try:
                if self._listener is not None:
                    await self._listener.on_partitions_revoked(revoked)
            finally:
                self._assignment = self._assignment - revoked

        self._on_loop(revoking(), "on_partitions_revoked")

    def _on_loop(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run a rebalance step on the event loop and wait for it (the assignment changes
        only there, between the loop's awaits, so a batch is never checked against a
        half-made change)."""
        loop = self._loop
        if self._closing or loop is None or loop.is_closed():
            coroutine.close()  # leaving the group: no listener, nothing fetched is taken
            return
        try:
            asyncio.run_coroutine_threadsafe(coroutine, loop).result()
        except Exception:
            # librdkafka would re-raise it from the next fetch, far from its cause
            logger.exception("rebalance listener %s failed", name)

    # ------------------------------------------------------------------ internals

    def _seek(self, consumer: Any, partition: TopicPartition, offset: int) -> None:
        try:
            consumer.seek(RdTopicPartition(partition.topic, partition.partition, offset))
        except KafkaException as exc:
            raise aiokafka_error(exc) from None

    def _require_started(self) -> tuple[Any, concurrent.futures.ThreadPoolExecutor]:
        if self._consumer is None or self._fetcher is None:
            raise KafkaConnectionError("the consumer is not started")
        return self._consumer, self._fetcher

    def _pause_or_resume(self, what: str, partitions: Iterable[TopicPartition]) -> None:
        consumer, _ = self._require_started()
        owned = self._assignment
        tps = [RdTopicPartition(tp.topic, tp.partition) for tp in partitions if tp in owned]
        if not tps:
            return
        try:
            getattr(consumer, what)(tps)
        except KafkaException as exc:
            # partitions assigned this very rebalance are handed to librdkafka just after
            logger.debug("consumer: %s of %d partitions failed: %s", what, len(tps), exc)
