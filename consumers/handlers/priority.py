"""An event bus that releases events in priority order (the seed's ``PriorityEventBus``).

Fix of the seed: it pushed ``(priority.value, event)`` tuples, so two events of
the same priority were compared as ``SystemEvent``s and ``heapq`` raised
``TypeError``. Entries here are ``(priority, sequence, event)``: FIFO within a
priority, and events are never compared. The heap is bounded by ``max_queue_size``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from enum import Enum

from agent_events.agent_runtime.errors import BusClosed, InvalidEventError, QueueFull
from agent_events.agent_runtime.event_bus import DEFAULT_HANDLER_TIMEOUT, EventBus
from agent_events.agent_runtime.events import EventType, SystemEvent

__all__ = ["Priority", "PriorityEventBus"]


class Priority(Enum):
    """Lower value is released first."""

    HIGH = 1
    MEDIUM = 2
    LOW = 3


class PriorityEventBus(EventBus):
    """An :class:`EventBus` whose ``publish`` holds events until :meth:`dispatch_events`.

    ``dispatch_events()`` hands the held events to the underlying bus, highest
    priority first and in publish order within a priority; from there every
    subscriber sees them in that order. ``dispatch()`` is not held back: it runs
    the handlers at once. ``stop()`` (and leaving ``async with``) releases the held
    events before draining the bus.
    """

    def __init__(
        self,
        max_queue_size: int = 10_000,
        enable_metrics: bool = False,
        handler_timeout: float | None = DEFAULT_HANDLER_TIMEOUT,
        sync_publish_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            max_queue_size=max_queue_size,
            enable_metrics=enable_metrics,
            handler_timeout=handler_timeout,
            sync_publish_timeout=sync_publish_timeout,
        )
        self.priority_queue: list[tuple[int, int, SystemEvent]] = []
        self._sequence = itertools.count()
        self._heap_lock = threading.Lock()  # publish_sync may come from another thread

    @property
    def pending(self) -> int:
        """Events held, waiting for :meth:`dispatch_events`."""
        return len(self.priority_queue)

    async def publish(self, event: SystemEvent, priority: Priority = Priority.MEDIUM) -> None:
        """Hold ``event`` with ``priority``; raises :class:`QueueFull` when the heap is full."""
        self._push(event, priority)

    def publish_sync(self, event: SystemEvent, priority: Priority = Priority.MEDIUM) -> None:
        """Same as :meth:`publish`, from synchronous code or another thread."""
        self._push(event, priority)

    def _push(self, event: SystemEvent, priority: Priority) -> None:
        if self._closed:
            raise BusClosed("the event bus is stopped; start it again before publishing")
        if not isinstance(event, SystemEvent):
            raise InvalidEventError(f"publish takes a SystemEvent, got {type(event).__name__}")
        if event.event_type is EventType.ANY:
            raise InvalidEventError(
                "EventType.ANY is a subscription wildcard; it cannot be published"
            )
        if not isinstance(priority, Priority):
            raise InvalidEventError(f"priority must be a Priority member, got {priority!r}")
        with self._heap_lock:
            if len(self.priority_queue) >= self.max_queue_size:
                raise QueueFull(
                    f"{len(self.priority_queue)} events wait for dispatch_events() "
                    f"(max_queue_size={self.max_queue_size}); call dispatch_events() more often"
                )
            heapq.heappush(self.priority_queue, (priority.value, next(self._sequence), event))

    async def dispatch_events(self) -> int:
        """Release every held event to the bus in priority order; returns how many.

        Waits for queue room like ``EventBus.publish``. If the bus refuses an event,
        it is held again (in its old place) and the error is raised.
        """
        released = 0
        while True:
            with self._heap_lock:
                if not self.priority_queue:
                    return released
                entry = heapq.heappop(self.priority_queue)
            try:
                await super().publish(entry[2])
            except BaseException:
                with self._heap_lock:
                    heapq.heappush(self.priority_queue, entry)
                raise
            released += 1

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Release the held events, then stop as :meth:`EventBus.stop` does."""
        if not self._closed and self.priority_queue:
            await self.dispatch_events()
        await super().stop(drain_timeout)
