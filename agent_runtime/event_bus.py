"""The in-process event bus: publish/subscribe with bounded queues, per handler.

Guarantees:

* **Order.** Events enter one shared queue; every subscriber sees them in the order
  they entered the bus (one global order for all subscribers, also with concurrent
  publishers), whether its handler runs on the shared worker or its own.
* **Isolation.** A handler that raises is logged and counted; other handlers and
  the bus go on. The shared worker never waits on a handler: a call that suspends
  moves, with its subscriber's later events, to that subscriber's own worker until
  it catches up. A handler that runs past its timeout is cancelled
  (:class:`HandlerTimeout`), so a hung handler delays only its own subscriber, and
  only for that long.
* **Context.** A queued event carries its publisher's context: a handler reached
  by ``publish`` sees the publisher's trace span and bound log fields, as one
  reached by ``dispatch`` does.
* **Bounded memory.** No subscriber has more than ``max_queue_size`` events waiting
  (not yet started); events are shared, never copied per handler. When a subscriber's
  queue is full, ``await publish()`` waits for room (backpressure) and
  ``publish_sync()`` raises :class:`QueueFull` without delivering the event to anyone.
* **Dispatch now.** ``await dispatch(event)`` runs the matching handlers at once,
  concurrently, and reports each one's outcome; the Kafka consumer runtime commits
  offsets on it.

This module moves events (subscriptions, fan-out, queues, loops);
:mod:`agent_runtime._inline` runs them on the shared worker and
:mod:`agent_runtime._engine` calls the handlers, for every path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Collection
from contextvars import copy_context
from types import EllipsisType

from agent_events.agent_runtime._engine import HandlerEngine
from agent_events.agent_runtime._fanout import (
    PublisherContexts,
    SlowLane,
    hand_over,
    refuse_self_deadlock,
)
from agent_events.agent_runtime._inline import Entry, SharedWorker
from agent_events.agent_runtime._lanes import Lane
from agent_events.agent_runtime._routing import Routes
from agent_events.agent_runtime._workers import Workers
from agent_events.agent_runtime.bus_metrics import BusMetrics, LatencyStats, MetricsSnapshot
from agent_events.agent_runtime.errors import BusClosed, ConfigError
from agent_events.agent_runtime.events import EventType, EventTypeLike, SystemEvent
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.agent_runtime.subscription import (
    DispatchResult,
    Handler,
    HandlerOutcome,
    Subscription,
    handler_name,
    type_label,
)

__all__ = [
    "DEFAULT_HANDLER_TIMEOUT",
    "DispatchResult",
    "EventBus",
    "EventType",
    "Handler",
    "HandlerOutcome",
    "LatencyStats",
    "MetricsSnapshot",
    "SystemEvent",
    "handler_name",
    "type_label",
]

logger = logging.getLogger(__name__)

DEFAULT_HANDLER_TIMEOUT = 30.0


class EventBus(AsyncResource):
    """Publish/subscribe for :class:`SystemEvent` within one process.

    Use it as ``async with EventBus() as bus`` or call :meth:`start`/:meth:`stop`;
    a bus that is only subscribed to and published on starts by itself on the
    running loop, as the seed's examples do.
    """

    def __init__(
        self,
        max_queue_size: int = 10_000,
        enable_metrics: bool = False,
        handler_timeout: float | None = DEFAULT_HANDLER_TIMEOUT,
        sync_publish_timeout: float = 5.0,
    ) -> None:
        if not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ConfigError(f"max_queue_size must be a positive integer, got {max_queue_size!r}")
        if handler_timeout is not None and handler_timeout <= 0:
            raise ConfigError(f"handler_timeout must be positive or None, got {handler_timeout!r}")
        self.max_queue_size = max_queue_size
        self.handler_timeout = handler_timeout
        self.sync_publish_timeout = sync_publish_timeout
        self._metrics: BusMetrics | None = BusMetrics() if enable_metrics else None
        self._engine = HandlerEngine(self._metrics)
        self._routes = Routes(self._metrics, self._engine.label)
        self._shared = SharedWorker(self._engine)
        self._workers = Workers(self._engine, self._shared)
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._slow = SlowLane()
        self._contexts = PublisherContexts()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the bus to the running loop and start every subscription's worker."""
        self._closed = False
        self._bind()

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop taking events, finish what is queued (up to ``drain_timeout``), stop workers.

        Events still queued when the timeout expires are dropped and logged.
        """
        self._closed = True
        if self._loop is None or self._loop is not asyncio.get_running_loop():
            return
        try:
            await asyncio.wait_for(self.join(), drain_timeout)
        except TimeoutError:
            lanes = self._workers.lanes(self._routes)
            dropped = sum(self._shared.backlog(lane) for lane in lanes)
            logger.warning("event bus stopped with %d undelivered events", dropped)
        await self._workers.stop(self._routes)
        self._engine.watchdog.close()
        self._loop = None

    async def join(self) -> None:
        """Wait until every event queued so far has been handled by every subscriber."""
        lanes = self._workers.lanes(self._routes)
        idle = self._shared.until_idle
        await asyncio.gather(*(idle(lane) for lane in lanes), *self._workers.retiring)

    # --------------------------------------------------------------- subscriptions

    async def subscribe(
        self,
        event_type: EventTypeLike,
        handler: Handler,
        *,
        handler_timeout: float | EllipsisType | None = ...,
    ) -> str:
        """Call ``handler`` for every event of ``event_type`` (``EventType.ANY``: all).

        Returns the subscription id for :meth:`unsubscribe`. ``handler_timeout``
        overrides the bus's ``handler_timeout`` for this handler (``None``: no limit).
        """
        limit = self.handler_timeout if handler_timeout is ... else handler_timeout
        sub = Subscription(f"sub-{next(self._ids)}", event_type, handler, limit)
        lane = Lane(sub, self._shared.progress)
        self._bind()
        self._routes.add(lane)
        return lane.sub.id

    async def unsubscribe(self, subscription_id: str, *, drain: bool = False) -> bool:
        """Stop delivering new events to a subscription; returns whether it existed.

        Events already queued for it are still handled: ``join`` waits for them, and
        with ``drain=True`` so does this call (a producer stopping uses it so that
        every event published before is sent).
        """
        lane = self._routes.remove(subscription_id)
        if lane is None:
            return False
        retiring = self._workers.retire(lane)
        if drain:
            await asyncio.shield(retiring)
        return True

    async def unsubscribe_handler(self, handler: Handler) -> int:
        """Remove every subscription of ``handler``; returns how many there were."""
        ids = [lane.sub.id for lane in self._routes if lane.sub.handler == handler]
        for sub_id in ids:
            await self.unsubscribe(sub_id)
        return len(ids)

    @property
    def subscription_count(self) -> int:
        return len(self._routes)

    # ------------------------------------------------------------------ publishing

    async def publish(self, event: SystemEvent) -> None:
        """Queue ``event`` for every matching subscriber; waits while a queue is full."""
        if self._closed:
            raise BusClosed("the event bus is stopped; start it again before publishing")
        targets = self._routes.accept(event)
        if not targets.lanes:
            return
        if not self._on_bound_loop():
            self._bind()
        context = copy_context()  # PublisherContexts.capture(), inlined: the hot path
        entry: Entry = (event, self._contexts.keep(context) if context else None, targets)
        shared = self._shared
        bound = self.max_queue_size
        # Fast path (the first test of SharedWorker.has_room, inlined): while the shared
        # queue is well below the bound and no target lags, every target has room.
        roomy = len(shared.entries) + 2 <= bound and not targets.lagging
        if self._slow.waiting or not (roomy or shared.has_room(targets, bound)):
            await self._publish_waiting(entry)
            return
        shared.put(entry)

    def publish_sync(self, event: SystemEvent) -> None:
        """Publish from synchronous code; never waits for queue room.

        * On the bus's loop thread: the event is queued at once, or :class:`QueueFull`
          is raised and no subscriber gets it.
        * From another thread while the bus's loop runs: the same, done on the loop's
          thread; this thread waits (up to ``sync_publish_timeout``) for the answer.
        * With no running loop bound to the bus: the matching handlers run to
          completion on a temporary loop before this returns (errors isolated).

        In each case the handlers see this thread's context (trace span, log fields).
        """
        if self._closed:
            raise BusClosed("the event bus is stopped; start it again before publishing")
        targets = self._routes.accept(event)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        entry: Entry = (event, self._contexts.capture(), targets)
        if running is not None and (loop is None or loop is running or not loop.is_running()):
            if loop is not running:
                self._bind()
            self._slow.put_nowait(entry, self.max_queue_size, self._shared)
        elif loop is not None and loop.is_running():
            hand_over(self._deliver_later(entry), loop, self.sync_publish_timeout)
        else:  # no loop anywhere: handlers run now, on a private loop
            try:
                asyncio.run(self._engine.dispatch(event, targets.lanes))
            finally:
                self._engine.watchdog.close()  # its timer died with that loop

    async def dispatch(
        self, event: SystemEvent, *, only: Collection[str] | None = None
    ) -> DispatchResult:
        """Run the matching handlers now, concurrently, and report each outcome.

        Unlike :meth:`publish` this bypasses the queues: when it returns, every
        matching handler has finished (or failed, or timed out). ``only`` limits the
        run to these subscription ids, so a caller can retry just the handlers that
        failed.
        """
        targets = self._routes.accept(event).lanes
        if only is not None:
            targets = tuple(lane for lane in targets if lane.sub.id in only)
        return await self._engine.dispatch(event, targets)

    def wants(self, type_label: str) -> bool:
        """Whether an event whose type label (:func:`type_label`) is ``type_label`` would reach
        any handler: a consumer checks the record's ``event_type`` header before decoding."""
        return self._routes.wants(type_label)

    def get_metrics(self) -> MetricsSnapshot | None:
        """A snapshot of the metrics, or ``None`` when the bus was built without them."""
        if self._metrics is None:
            return None
        backlog = self._shared.backlog
        depth = {f"{lane.sub.id}:{lane.sub.name}": backlog(lane) for lane in self._routes}
        return self._metrics.snapshot(depth)

    # ------------------------------------------------------------------- internals

    def _on_bound_loop(self) -> bool:
        """Whether the caller runs on the bus's loop (cheaper than ``get_running_loop()``)."""
        loop = self._loop
        return loop is not None and loop.is_running() and threading.get_ident() == self._loop_thread

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop; move subscriptions over from a finished loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            self._loop_thread = threading.get_ident()
            return loop
        if self._loop is not None and self._loop.is_running() and not self._loop.is_closed():
            raise BusClosed(
                "this EventBus runs on an event loop in another thread; "
                "use publish_sync() from other threads"
            )
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._slow = SlowLane()
        self._engine.watchdog.follow(loop)
        self._workers.start(self._workers.lanes(self._routes), loop)
        return loop

    def _deliver_later(self, entry: Entry) -> Callable[[], None]:
        """``publish_sync`` of ``entry`` as the bus's loop thread will run it."""
        event, context, _ = entry

        def deliver() -> None:
            targets = self._routes.targets_for(event.event_type)
            if targets.lanes:
                later: Entry = (event, context, targets)
                self._slow.put_nowait(later, self.max_queue_size, self._shared)

        return deliver

    async def _publish_waiting(self, entry: Entry) -> None:
        """Slow path: wait for room with each of ``targets``, behind earlier waiters.

        A handler that would wait for room in its own queue is refused instead (it
        would wait forever).
        """
        task = asyncio.current_task()
        shared = self._shared
        current = shared.stepping if task is shared.task else self._engine.serving(task)
        if current is not None:
            refuse_self_deadlock(current, entry[2], self.max_queue_size, shared)
        await self._slow.put(entry, self.max_queue_size, shared)
