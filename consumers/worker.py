"""Feeding one partition's records to the processor, in per-partition or per-key order.

Both orderings are one algorithm: records are grouped into *chains* by an
ordering key and each chain runs its records one after another. Per-partition
ordering has one chain (every record has the same ordering key); per-key ordering
has one chain per record key (session), up to ``max_concurrent_keys`` at once.

Before each record starts, the worker asks ``may_start`` (the member's fence): a
member that presumes it lost its partitions starts nothing more, and the record
it would have started is dropped like a revocation drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord, TopicPartition

from agent_events.consumers.config import Ordering
from agent_events.consumers.offsets import OffsetTracker
from agent_events.consumers.processing import RecordProcessor

__all__ = ["PartitionWorker"]

logger = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information


class PartitionWorker:
    """Runs the records of one assigned partition; owns its tasks and offset tracker."""

    def __init__(
        self,
        tp: TopicPartition,
        processor: RecordProcessor,
        ordering: Ordering,
        max_concurrent_keys: int,
        may_start: Callable[[], bool] = lambda: True,
    ) -> None:
        self.tp = tp
        self.tracker = OffsetTracker()
        self.failure: BaseException | None = None
        self._processor = processor
        self._may_start = may_start
        self._by_key = ordering == "key"
        self._slots = asyncio.Semaphore(max_concurrent_keys if self._by_key else 1)
        self._incoming: deque[Record] = deque()
        self._arrived = asyncio.Event()
        self._chains: dict[bytes | None, deque[Record]] = {}
        self._chain_tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._feeder = asyncio.get_running_loop().create_task(
            self._feed(), name=f"partition-worker:{tp.topic}:{tp.partition}"
        )

    @property
    def pending(self) -> int:
        """Records submitted and not yet finished (the pause/resume measure)."""
        return self._pending

    def submit(self, records: list[Record]) -> None:
        """Queue fetched records (in offset order) for handling."""
        if not records:
            return
        self._incoming.extend(records)
        self._pending += len(records)
        self._idle.clear()
        self._arrived.set()

    async def close(self, *, finish_queued: bool, deadline_s: float) -> None:
        """Stop this worker deterministically.

        ``finish_queued=True`` (shutdown): every submitted record is handled, up
        to ``deadline_s``. ``finish_queued=False`` (revocation): records not yet
        started are dropped at once and only those in flight may finish, up to
        ``deadline_s``. Whatever is still running then is cancelled; the offset
        tracker's committable prefix is then final.
        """
        if not finish_queued:
            self._drop_not_started()
        try:
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        except TimeoutError:
            logger.warning(
                "%s[%d]: %d records not finished within %.1fs; abandoned (they will be redelivered)",
                self.tp.topic,
                self.tp.partition,
                self._pending,
                deadline_s,
            )
        self._feeder.cancel()
        tasks = [self._feeder, *self._chain_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def fence(self) -> int | None:
        """Drop every record not started (as a revocation does); in-flight ones go on.

        Returns the lowest dropped offset the tracker does not know (records not yet
        taken into a chain), so the member can fetch them again if it turns out to
        still own the partition; dropped chain records stay the tracker's
        :meth:`~OffsetTracker.first_pending`.
        """
        first = self._incoming[0].offset if self._incoming else None
        self._drop_not_started()
        return first

    def _drop_not_started(self) -> None:
        dropped = len(self._incoming)
        self._incoming.clear()
        for chain in self._chains.values():
            while len(chain) > 1:  # chain[0] is in flight
                chain.pop()
                dropped += 1
        self._forget(dropped)

    def _forget(self, dropped: int) -> None:
        self._pending -= dropped
        if self._pending == 0:
            self._idle.set()

    async def _feed(self) -> None:
        incoming = self._incoming
        while True:
            if not incoming:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            record = incoming[0]
            key = record.key if self._by_key else None
            chain = self._chains.get(key)
            if chain is None:
                await self._slots.acquire()
                if not incoming or incoming[0] is not record:
                    self._slots.release()  # dropped by a revocation meanwhile
                    continue
                chain = self._chains[key] = deque()
                task = asyncio.get_running_loop().create_task(self._run_chain(key, chain))
                self._chain_tasks.add(task)
                task.add_done_callback(self._chain_tasks.discard)
            incoming.popleft()
            self.tracker.take(record.offset)
            chain.append(record)

    async def _run_chain(self, key: bytes | None, chain: deque[Record]) -> None:
        try:
            while chain:
                record = chain[0]
                if not self._may_start():  # fenced: this record was not started either
                    self._forget(len(chain))
                    chain.clear()
                    break
                await self._processor.process(record)
                chain.popleft()
                self.tracker.finish(record.offset)
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in processing: stop loudly, never skip the record
            logger.critical(
                "%s[%d]: processing failed unexpectedly",
                self.tp.topic,
                self.tp.partition,
                exc_info=exc,
            )
            self.failure = exc
            raise
        finally:
            if self._chains.get(key) is chain:
                del self._chains[key]
            self._slots.release()
