"""Run a handler at most once per ``event_id`` (best practice 1, made reusable).

Consumers deliver at least once, so after a crash or rebalance an event may come
again. :class:`IdempotentHandler` remembers handled ids in a bounded LRU
(:class:`SeenEvents`); an id is remembered only after the handler *succeeded*, so
a failed event is run again on redelivery. Two concurrent deliveries of one id
run the handler once: the second waits for the first and then skips (or, if the
first failed, runs it itself).

The memory is per process and bounded: an id older than the newest
``max_remembered`` may run again. For exactly-once effects across processes,
make the sink itself idempotent (e.g. the event store's ``INSERT OR IGNORE``).
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from agent_events.agent_runtime.event_bus import Handler
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.lru import LRUMap, require_positive_int
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["IdempotentHandler", "SeenEvents"]


class SeenEvents:
    """The newest ``max_remembered`` event ids, least recently seen forgotten first."""

    def __init__(self, max_remembered: int = 100_000) -> None:
        self.max_remembered = require_positive_int("max_remembered", max_remembered)
        self._ids: LRUMap[UUID, None] = LRUMap(self.max_remembered)

    def add(self, event_id: UUID) -> None:
        self._ids.put(event_id, None)

    def seen(self, event_id: UUID) -> bool:
        """Whether ``event_id`` is remembered; a hit counts as a recent use."""
        return self._ids.touch(event_id)

    def discard(self, event_id: UUID) -> None:
        self._ids.pop(event_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class IdempotentHandler:
    """Calls ``handler`` once per ``event_id``; errors propagate and leave the id unseen."""

    def __init__(
        self,
        handler: Handler,
        max_remembered: int = 100_000,
        *,
        seen: SeenEvents | None = None,
    ) -> None:
        self.handler = handler
        self.seen = seen if seen is not None else SeenEvents(max_remembered)
        self._in_flight: dict[UUID, asyncio.Event] = {}
        self.handled = 0
        self.duplicates = 0

    async def __call__(self, event: SystemEvent) -> None:
        event_id = event.event_id
        while True:
            if self.seen.seen(event_id):
                self.duplicates += 1
                return
            running = self._in_flight.get(event_id)
            if running is None:
                break
            await running.wait()  # a waiter's cancellation does not touch the first delivery
        done = self._in_flight[event_id] = asyncio.Event()
        try:
            await call_handler(self.handler, event)
            self.seen.add(event_id)
            self.handled += 1
        finally:
            del self._in_flight[event_id]
            done.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
