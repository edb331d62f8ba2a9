"""Buffer events and process them in batches (the seed's ``BatchEventHandler``).

Fixes of the seed: ``flush_interval`` was never used (a quiet stream kept its
last events forever); ``buffer.clear()`` after the awaited write dropped events
that arrived during it; nothing flushed on shutdown; a failing batch was lost
silently or blocked the buffer.

Flush steps, under one lock so batches reach ``process_batch`` in arrival order:

1. take a pending failed batch, if any, and retry it; if it fails again and has
   attempts left, stop here (newer events wait behind it);
2. take up to ``batch_size`` events out of the buffer *before* awaiting, so events
   that arrive meanwhile stay buffered for the next batch;
3. call ``process_batch(batch)``; on failure keep it as the pending batch, or,
   after ``max_batch_attempts`` attempts, hand it to ``on_error`` (or log and drop
   it) and go on;
4. repeat 2-3 until the buffer is empty.

A flush runs when the buffer reaches ``batch_size``, at most ``flush_interval``
seconds after an event was buffered (a timer task the handler owns), and on
:meth:`aclose` (or leaving ``async with``). A buffered event is acknowledged to
its publisher before it is written, so in a consumer service a crash loses the
buffer: use it where that is acceptable or the consumer commits on flush.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, TypeAlias

from agent_events.agent_runtime.errors import ConfigError, QueueFull
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.lru import require_positive_int

__all__ = ["BatchErrorCallback", "BatchEventHandler", "BatchProcessor"]

logger = logging.getLogger(__name__)

BatchProcessor: TypeAlias = Callable[[list[SystemEvent]], Awaitable[object]]
BatchErrorCallback: TypeAlias = Callable[
    [list[SystemEvent], BaseException], Awaitable[object] | object
]


class BatchEventHandler:
    """Collects events and calls ``process_batch(events)`` by size, by interval and on close.

    Memory is bounded: at most ``max_buffered`` events wait (default ten batches);
    when a failing sink lets the buffer fill up, a call raises :class:`QueueFull`
    (after one more flush attempt) instead of growing without bound.
    """

    def __init__(
        self,
        process_batch: BatchProcessor | None = None,
        batch_size: int = 100,
        flush_interval: float = 5.0,
        *,
        max_batch_attempts: int = 3,
        on_error: BatchErrorCallback | None = None,
        max_buffered: int | None = None,
    ) -> None:
        self.batch_size = require_positive_int("batch_size", batch_size)
        if not flush_interval > 0:
            raise ConfigError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        self.flush_interval = flush_interval
        self.max_batch_attempts = require_positive_int("max_batch_attempts", max_batch_attempts)
        self.max_buffered = require_positive_int(
            "max_buffered", max_buffered if max_buffered is not None else 10 * batch_size
        )
        if self.max_buffered < self.batch_size:
            raise ConfigError(
                f"max_buffered ({self.max_buffered}) must be >= batch_size ({self.batch_size})"
            )
        self._process = process_batch
        self.on_error = on_error
        self.buffer: list[SystemEvent] = []
        self._failed: list[SystemEvent] | None = None
        self._failed_attempts = 0
        self._lock = asyncio.Lock()
        self._has_work = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self.processed = 0
        self.batches = 0
        self.failed_batches = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Events not processed yet: buffered plus a failed batch awaiting retry."""
        return len(self.buffer) + (len(self._failed) if self._failed else 0)

    async def handle_event(self, event: SystemEvent) -> None:
        """Buffer ``event``; flush when the batch is full (the seed's method name)."""
        if self._closed:
            raise QueueFull("BatchEventHandler is closed; it takes no new events")
        if self.pending >= self.max_buffered:
            await self.flush()
            if self.pending >= self.max_buffered:
                raise QueueFull(
                    f"BatchEventHandler holds {self.pending} unprocessed events (max_buffered="
                    f"{self.max_buffered}) because process_batch keeps failing; fix the sink "
                    "or raise max_buffered"
                )
        self.buffer.append(event)
        self._has_work.set()
        self._ensure_timer()
        if len(self.buffer) >= self.batch_size:
            await self.flush()

    __call__ = handle_event

    async def flush(self) -> int:
        """Process everything buffered now, in batches; returns how many events were processed.

        Never raises for a failing batch (see the module docstring); a batch still
        pending after this call is retried by the next flush.
        """
        async with self._lock:
            before = self.processed
            await self._flush_locked()
            if not self.buffer and self._failed is None:
                self._has_work.clear()
            return self.processed - before

    _flush = flush

    async def _process_batch(self, events: list[SystemEvent]) -> None:
        """Override in a subclass, or pass ``process_batch`` to the constructor."""
        if self._process is None:
            raise NotImplementedError(
                "give BatchEventHandler a process_batch callable or override _process_batch"
            )
        await self._process(events)

    async def _flush_locked(self) -> None:
        if self._failed is not None and not await self._attempt(self._failed):
            return
        while self.buffer:
            batch = self.buffer[: self.batch_size]
            del self.buffer[: self.batch_size]
            self._failed_attempts = 0
            if not await self._attempt(batch):
                return

    async def _attempt(self, batch: list[SystemEvent]) -> bool:
        """Process one batch; False when it failed and stays pending for a retry."""
        try:
            await self._process_batch(batch)
        except asyncio.CancelledError:
            self._failed = batch  # not lost: the next flush (or aclose) retries it
            raise
        except Exception as exc:  # noqa: BLE001 (the user's batch function may raise anything)
            self._failed_attempts += 1
            if self._failed_attempts < self.max_batch_attempts:
                self._failed = batch
                logger.warning(
                    "batch of %d events failed (attempt %d of %d), will retry: %s: %s",
                    len(batch),
                    self._failed_attempts,
                    self.max_batch_attempts,
                    type(exc).__name__,
                    exc,
                )
                return False
            self._failed = None
            self._failed_attempts = 0
            self.failed_batches += 1
            await self._give_up(batch, exc)
            return True
        self._failed = None
        self._failed_attempts = 0
        self.processed += len(batch)
        self.batches += 1
        return True

    async def _give_up(self, batch: list[SystemEvent], exc: Exception) -> None:
        if self.on_error is None:
            self.dropped += len(batch)
            logger.error(
                "dropping a batch of %d events after %d failed attempts",
                len(batch),
                self.max_batch_attempts,
                exc_info=exc,
            )
            return
        try:
            result = self.on_error(batch, exc)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.dropped += len(batch)
            logger.exception("on_error failed for a batch of %d events; dropped", len(batch))

    def _ensure_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(
                self._flush_periodically(), name="batch-event-handler:timer"
            )

    async def _flush_periodically(self) -> None:
        while True:
            await self._has_work.wait()
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def aclose(self) -> None:
        """Stop the timer and flush what is buffered, retrying failed batches up to their cap."""
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
        while self.pending:
            await self.flush()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
