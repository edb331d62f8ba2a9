"""How the producer's records reach the client library: one :class:`RecordSender` per library.

:func:`open_sender` picks it from the ``client`` setting, so the producer does not branch
on the library: it chooses the partition itself (Java's murmur2), then ``add``s each
record and ``flush``es or ``close``s the sender.

**librdkafka** (``client="confluent"``): :class:`ConfluentSender` hands each record to
librdkafka with that partition; librdkafka batches per partition itself (``linger.ms``,
``batch.size``), keeps a partition's records in send order (idempotent) and reports each
record alone, on the event loop: its future gets its offset, or ``on_refused`` then
``on_failure`` hear of it.

**aiokafka**: records are gathered per partition into batches handed to aiokafka whole.

aiokafka's ``send()`` costs a future, a done-callback and a partition lookup per
record; its ``send_batch()`` costs one of each per batch, the path a hand-written
producer takes. :class:`PartitionBatches` takes that path for every record:

1. :meth:`~PartitionBatches.add` appends a record to its partition's open batch; a
   full batch is handed off and a new one opened; a new batch is handed off at the
   latest ``linger_s`` after it opened;
2. hand-offs of one partition go in the order the batches were opened (a lock per
   partition), so a session's records reach the broker in send order;
3. when the broker answers for a batch, one callback settles every record of it:
   each record's future gets its offset, or every record is reported as failed
   (``on_failure``), after ``on_refused`` lets the client recover (idempotence state)
   before aiokafka sends the next batch of that partition.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import RecordMetadata, TopicPartition

from agent_events.agent_runtime.events import SystemEvent
from agent_events.producers.headers import Headers

__all__ = ["ConfluentSender", "PartitionBatches", "Pending", "RecordSender", "open_sender"]

logger = logging.getLogger(__name__)

FailureCallback = Callable[[SystemEvent, BaseException], None]
AcknowledgedCallback = Callable[[int], None]
RefusedCallback = Callable[[BaseException], None]


@dataclass(slots=True)
class Pending:
    """One record in an open batch: its event, create time and the caller's future."""

    event: SystemEvent
    timestamp_ms: int
    future: asyncio.Future[Any] | None


class RecordSender(Protocol):
    """Takes the producer's records to one client library (module docstring)."""

    def known_partitions(self, topic: str) -> int | None:
        """The partition count of ``topic`` from the client's metadata; ``None`` if unknown."""
        ...

    async def partition_count(self, topic: str) -> int:
        """The partition count of ``topic``, waiting for its metadata."""
        ...

    async def add(
        self,
        tp: TopicPartition,
        key: bytes,
        value: bytes,
        timestamp_ms: int,
        headers: Headers,
        pending: Pending,
    ) -> None:
        """Take one record for ``tp``; waits only while the client has no room for it."""
        ...

    async def flush(self) -> None:
        """Wait until the broker answered for every record taken so far."""
        ...

    async def close(self) -> None:
        """Flush, then stop the client (also when the flush fails or is cancelled)."""
        ...


def open_sender(
    client: str,
    producer: Any,
    *,
    linger_s: float,
    on_acknowledged: AcknowledgedCallback,
    on_failure: FailureCallback,
    on_refused: RefusedCallback,
) -> RecordSender:
    """The sender for a started ``producer`` of the library named ``client``."""
    sender = ConfluentSender if client == "confluent" else PartitionBatches
    return sender(
        producer,
        linger_s=linger_s,
        on_acknowledged=on_acknowledged,
        on_failure=on_failure,
        on_refused=on_refused,
    )


class ConfluentSender:
    """Each record straight to librdkafka, settled alone when it reports it (module docstring).

    ``producer`` is the confluent backend's producer; ``linger_s`` is librdkafka's
    ``linger.ms`` already, so it is not used here.
    """

    def __init__(
        self,
        producer: Any,
        *,
        linger_s: float,
        on_acknowledged: AcknowledgedCallback,
        on_failure: FailureCallback,
        on_refused: RefusedCallback,
    ) -> None:
        self._producer = producer
        self._on_acknowledged = on_acknowledged
        self._on_failure = on_failure
        self._on_refused = on_refused

    def known_partitions(self, topic: str) -> int | None:
        count: int | None = self._producer.known_partitions(topic)
        return count

    async def partition_count(self, topic: str) -> int:
        count: int = await self._producer.partition_count(topic)
        return count

    async def add(
        self,
        tp: TopicPartition,
        key: bytes,
        value: bytes,
        timestamp_ms: int,
        headers: Headers,
        pending: Pending,
    ) -> None:
        def delivered(error: BaseException | None, metadata: RecordMetadata | None) -> None:
            if error is not None:
                self._on_refused(error)
                _fail(pending, error, self._on_failure)
                return
            self._on_acknowledged(1)
            future = pending.future
            if future is not None and not future.done():
                future.set_result(metadata)

        args = (tp.topic, tp.partition, key, value, timestamp_ms, headers, delivered)
        if not self._producer.produce_nowait(*args):
            await self._producer.produce(*args)  # waits for room in librdkafka's queue

    async def flush(self) -> None:
        await self._producer.flush()

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()


@dataclass(slots=True)
class _OpenBatch:
    builder: Any
    records: list[Pending] = field(default_factory=list)
    linger: asyncio.TimerHandle | None = None


class PartitionBatches:
    """The open batch of every partition of one aiokafka producer (module docstring)."""

    def __init__(
        self,
        producer: Any,
        *,
        linger_s: float,
        on_acknowledged: AcknowledgedCallback,
        on_failure: FailureCallback,
        on_refused: RefusedCallback,
    ) -> None:
        self._producer = producer
        self._linger_s = linger_s
        self._on_acknowledged = on_acknowledged
        self._on_failure = on_failure
        self._on_refused = on_refused
        self._open: dict[TopicPartition, _OpenBatch] = {}
        self._locks: dict[TopicPartition, asyncio.Lock] = {}
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._hand_offs: set[asyncio.Task[None]] = set()

    async def add(
        self,
        tp: TopicPartition,
        key: bytes,
        value: bytes,
        timestamp_ms: int,
        headers: Headers,
        pending: Pending,
    ) -> None:
        """Append one record to ``tp``'s open batch (step 1); waits only while handing off.

        While this waits for a full batch to be handed off, another sender may open the
        next batch of ``tp``: the record then joins that one (or, full, hands it off too).
        """
        while True:
            batch = self._open.get(tp)
            if batch is None:
                batch = self._open_batch(tp)
            appended = batch.builder.append(
                key=key, value=value, timestamp=timestamp_ms, headers=headers
            )
            if appended is not None:
                batch.records.append(pending)
                return
            if not batch.records:  # aiokafka's builder takes any first record
                raise AssertionError("an empty batch refused a record")
            await self._hand_off(tp, batch)

    async def hand_off(self, tp: TopicPartition) -> None:
        """Give ``tp``'s open batch to aiokafka, after the batches opened before it."""
        batch = self._open.get(tp)
        if batch is not None:
            await self._hand_off(tp, batch)

    async def _hand_off(self, tp: TopicPartition, batch: _OpenBatch) -> None:
        if self._open.get(tp) is not batch:
            return  # handed off already (by the linger timer or another sender)
        lock = self._locks.get(tp)
        if lock is None:
            lock = self._locks[tp] = asyncio.Lock()
        # While the batch before it waits for aiokafka to take it, this one stays open and
        # takes more records: with no linger, records then go one batch per round trip, not
        # one record per round trip (which fell behind at a few thousand events/s).
        async with lock:
            if self._open.get(tp) is not batch:
                return
            del self._open[tp]
            if batch.linger is not None:
                batch.linger.cancel()
            try:
                future = await self._producer.send_batch(
                    batch.builder, tp.topic, partition=tp.partition
                )
            except AIOKafkaError as exc:  # closed, or no room within request_timeout_ms
                self._failed(batch.records, exc)
                return
        self._in_flight.add(future)
        future.add_done_callback(lambda f: self._settle(batch.records, f))

    async def flush(self) -> None:
        """Hand off every open batch and wait until the broker answered for all of them."""
        await asyncio.gather(*(self.hand_off(tp) for tp in list(self._open)))
        while self._hand_offs or self._in_flight:
            await asyncio.gather(*self._hand_offs, *self._in_flight, return_exceptions=True)

    async def close(self) -> None:
        """Flush, then stop the aiokafka producer (also when the flush fails or is cancelled)."""
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    def known_partitions(self, topic: str) -> int | None:
        partitions = self._producer.client.cluster.partitions_for_topic(topic)
        return len(partitions) if partitions else None

    async def partition_count(self, topic: str) -> int:
        return len(await self._producer.partitions_for(topic))

    def _open_batch(self, tp: TopicPartition) -> _OpenBatch:
        batch = self._open[tp] = _OpenBatch(self._producer.create_batch())
        loop = asyncio.get_running_loop()
        batch.linger = loop.call_later(self._linger_s, self._linger_expired, tp, batch)
        return batch

    def _linger_expired(self, tp: TopicPartition, batch: _OpenBatch) -> None:
        if self._open.get(tp) is not batch:
            return  # handed off already, because it filled up
        batch.linger = None
        task = asyncio.get_running_loop().create_task(self._hand_off(tp, batch))
        self._hand_offs.add(task)
        task.add_done_callback(self._hand_offs.discard)

    def _settle(self, records: list[Pending], future: asyncio.Future[Any]) -> None:
        """Step 3: one broker answer for every record of a batch."""
        self._in_flight.discard(future)
        if future.cancelled():
            self._failed(records, asyncio.CancelledError("the batch was cancelled"))
            return
        error = future.exception()
        if error is not None:
            self._on_refused(error)
            self._failed(records, error)
            return
        first: RecordMetadata = future.result()
        self._on_acknowledged(len(records))
        for index, record in enumerate(records):
            if record.future is not None and not record.future.done():
                timestamp = first.timestamp if first.timestamp != -1 else record.timestamp_ms
                record.future.set_result(
                    RecordMetadata(
                        first.topic,
                        first.partition,
                        first.topic_partition,
                        first.offset + index,
                        timestamp,
                        first.timestamp_type,
                        first.log_start_offset,
                    )
                )

    def _failed(self, records: list[Pending], error: BaseException) -> None:
        for record in records:
            _fail(record, error, self._on_failure)


def _fail(record: Pending, error: BaseException, on_failure: FailureCallback) -> None:
    on_failure(record.event, error)
    future = record.future
    if future is not None and not future.done():
        future.set_exception(copy.copy(error))  # one traceback per record
        future.exception()  # reported through on_failure: no "never retrieved" noise
