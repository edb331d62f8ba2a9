"""Records gathered per partition into batches the producer hands to aiokafka whole.

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
from typing import Any

from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import RecordMetadata, TopicPartition

from agent_events.agent_runtime.events import SystemEvent
from agent_events.producers.headers import Headers

__all__ = ["PartitionBatches", "Pending"]

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
        del self._open[tp]
        if batch.linger is not None:
            batch.linger.cancel()
        lock = self._locks.get(tp)
        if lock is None:
            lock = self._locks[tp] = asyncio.Lock()
        async with lock:
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
            self._on_failure(record.event, error)
            future = record.future
            if future is not None and not future.done():
                future.set_exception(copy.copy(error))  # one traceback per record
                future.exception()  # reported through on_failure: no "never retrieved" noise
