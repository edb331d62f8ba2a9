"""The in-process event bus: publish/subscribe with bounded queues, per handler.

Guarantees:

* **Order.** Each subscription has its own queue and worker, so every subscriber
  sees events in the order they entered the bus (one global order for all
  subscribers, also with concurrent publishers).
* **Isolation.** A handler that raises is logged and counted; other handlers and
  the bus go on. A handler that runs past its timeout is cancelled
  (:class:`HandlerTimeout`), so a hung handler delays only its own queue, and
  only for that long.
* **Bounded memory.** No queue holds more than ``max_queue_size`` events; events
  are shared, never copied per handler. When a queue is full, ``await publish()``
  waits for room (backpressure) and ``publish_sync()`` raises :class:`QueueFull`
  without delivering the event to anyone.
* **Dispatch now.** ``await dispatch(event)`` runs the matching handlers at once,
  concurrently, and reports each one's outcome; the Kafka consumer runtime commits
  offsets on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from enum import Enum
from types import EllipsisType, TracebackType
from typing import Self, TypeAlias

from agent_runtime.bus_metrics import BusMetrics, LatencyStats, MetricsSnapshot
from agent_runtime.errors import (
    BusClosed,
    ConfigError,
    HandlerTimeout,
    InvalidEventError,
    QueueFull,
    SubscriptionError,
)
from agent_runtime.events import (
    EventType,
    EventTypeLike,
    ForeignEventType,
    SystemEvent,
    event_type_key,
)

__all__ = [
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

Handler: TypeAlias = Callable[[SystemEvent], Awaitable[object] | object]

DEFAULT_HANDLER_TIMEOUT = 30.0
_running_subscription: contextvars.ContextVar[_Subscription | None] = contextvars.ContextVar(
    "agent_events_running_subscription", default=None
)


def handler_name(handler: object) -> str:
    """A readable, stable name for a handler: ``Class.method`` or the function name."""
    name = getattr(handler, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(handler).__qualname__


def type_label(event_type: EventTypeLike) -> str:
    """The label an event type has in metrics and logs: ``value`` or ``namespace:value``."""
    namespace, value = event_type_key(event_type)
    return f"{namespace}:{value}" if namespace else value


@dataclass(frozen=True, slots=True)
class HandlerOutcome:
    """What one handler did with one event in :meth:`EventBus.dispatch`."""

    subscription_id: str
    handler_name: str
    error: BaseException | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """The outcomes of every handler that matched an event."""

    event: SystemEvent
    outcomes: tuple[HandlerOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(o.error is None for o in self.outcomes)

    @property
    def failures(self) -> tuple[HandlerOutcome, ...]:
        return tuple(o for o in self.outcomes if o.error is not None)


class _Subscription:
    """One handler subscribed to one event type, with its queue and worker task."""

    __slots__ = ("event_type", "handler", "id", "name", "queue", "task", "timeout")

    def __init__(
        self,
        sub_id: str,
        event_type: EventTypeLike,
        handler: Handler,
        timeout: float | None,
    ) -> None:
        self.id = sub_id
        self.event_type = event_type
        self.handler = handler
        self.name = handler_name(handler)
        self.timeout = timeout
        self.queue: asyncio.Queue[SystemEvent] | None = None
        self.task: asyncio.Task[None] | None = None


class EventBus:
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
        self._subscriptions: dict[str, _Subscription] = {}
        self._targets: dict[EventTypeLike, tuple[_Subscription, ...]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publish_lock: asyncio.Lock | None = None
        self._closed = False
        self._labels: dict[EventTypeLike, str] = {}

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
            dropped = sum(s.queue.qsize() for s in self._subscriptions.values() if s.queue)
            logger.warning("event bus stopped with %d undelivered events", dropped)
        tasks = [s.task for s in self._subscriptions.values() if s.task is not None]
        tasks.extend(self._retiring)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in self._subscriptions.values():
            sub.task = None
            sub.queue = None
        self._retiring.clear()
        self._loop = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def join(self) -> None:
        """Wait until every event queued so far has been handled by every subscriber."""
        queues = [s.queue for s in self._subscriptions.values() if s.queue is not None]
        await asyncio.gather(*(q.join() for q in queues), *list(self._retiring))

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
        if isinstance(event_type, Enum):
            event_type_key(event_type)  # registers a custom enum, so decoders resolve it
        elif not isinstance(event_type, ForeignEventType):
            raise SubscriptionError(
                "subscribe needs an event type (an EventType member, EventType.ANY or a "
                f"custom Enum member), got {event_type!r}"
            )
        if not callable(handler):
            raise SubscriptionError(f"handler must be callable, got {handler!r}")
        limit = self.handler_timeout if handler_timeout is ... else handler_timeout
        sub = _Subscription(f"sub-{next(self._ids)}", event_type, handler, limit)
        loop = self._bind()
        self._subscriptions[sub.id] = sub
        self._targets.clear()
        self._start_worker(sub, loop)
        return sub.id

    async def unsubscribe(self, subscription_id: str) -> bool:
        """Stop delivering new events to a subscription; returns whether it existed.

        Events already queued for it are still handled (``join`` waits for them).
        """
        sub = self._subscriptions.pop(subscription_id, None)
        if sub is None:
            return False
        self._targets.clear()
        self._retire(sub)
        return True

    async def unsubscribe_handler(self, handler: Handler) -> int:
        """Remove every subscription of ``handler``; returns how many there were."""
        ids = [s.id for s in self._subscriptions.values() if s.handler == handler]
        for sub_id in ids:
            await self.unsubscribe(sub_id)
        return len(ids)

    @property
    def subscription_count(self) -> int:
        return len(self._subscriptions)

    # ------------------------------------------------------------------ publishing

    async def publish(self, event: SystemEvent) -> None:
        """Queue ``event`` for every matching subscriber; waits while a queue is full."""
        targets = self._accept(event)
        if self._loop is not asyncio.get_running_loop():
            self._bind()
        lock = self._publish_lock
        if (lock is not None and lock.locked()) or any(s.queue.full() for s in targets):  # type: ignore[union-attr]
            await self._publish_waiting(event, targets)
            return
        for sub in targets:
            sub.queue.put_nowait(event)  # type: ignore[union-attr]

    def publish_sync(self, event: SystemEvent) -> None:
        """Publish from synchronous code; never waits for queue room.

        * On the bus's loop thread: the event is queued at once, or :class:`QueueFull`
          is raised and no subscriber gets it.
        * From another thread while the bus's loop runs: the same, done on the loop's
          thread; this thread waits (up to ``sync_publish_timeout``) for the answer.
        * With no running loop bound to the bus: the matching handlers run to
          completion on a temporary loop before this returns (errors isolated).
        """
        targets = self._accept(event)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if running is not None and (loop is None or loop is running or not loop.is_running()):
            if loop is not running:
                self._bind()
            self._publish_nowait(event, targets)
            return
        if loop is not None and loop.is_running():
            self._publish_from_thread(event, loop)
            return
        # No loop anywhere: handlers run now, on a private loop.
        asyncio.run(self._dispatch_to(event, targets))

    async def dispatch(
        self, event: SystemEvent, *, only: Collection[str] | None = None
    ) -> DispatchResult:
        """Run the matching handlers now, concurrently, and report each outcome.

        Unlike :meth:`publish` this bypasses the queues: when it returns, every
        matching handler has finished (or failed, or timed out). ``only`` limits the
        run to these subscription ids, so a caller can retry just the handlers that
        failed.
        """
        targets = self._accept(event, closed_ok=True)
        if only is not None:
            targets = tuple(s for s in targets if s.id in only)
        return await self._dispatch_to(event, targets)

    async def _dispatch_to(
        self, event: SystemEvent, targets: tuple[_Subscription, ...]
    ) -> DispatchResult:
        if not targets:
            return DispatchResult(event, ())
        if len(targets) == 1:
            return DispatchResult(event, (await self._timed_run(targets[0], event),))
        outcomes = await asyncio.gather(*(self._timed_run(s, event) for s in targets))
        return DispatchResult(event, tuple(outcomes))

    def get_metrics(self) -> MetricsSnapshot | None:
        """A snapshot of the metrics, or ``None`` when the bus was built without them."""
        if self._metrics is None:
            return None
        depth = {
            f"{s.id}:{s.name}": s.queue.qsize()
            for s in self._subscriptions.values()
            if s.queue is not None
        }
        return self._metrics.snapshot(depth)

    # ------------------------------------------------------------------- internals

    def _accept(self, event: SystemEvent, closed_ok: bool = False) -> tuple[_Subscription, ...]:
        """Validate and count an event; the subscriptions it goes to."""
        if self._closed and not closed_ok:
            raise BusClosed("the event bus is stopped; start it again before publishing")
        if not isinstance(event, SystemEvent):
            raise InvalidEventError(f"publish takes a SystemEvent, got {type(event).__name__}")
        event_type = event.event_type
        if event_type is EventType.ANY:
            raise InvalidEventError(
                "EventType.ANY is a subscription wildcard; it cannot be published"
            )
        if self._metrics is not None:
            self._metrics.published[self._label(event_type)] += 1
        return self._targets_for(event_type)

    def _targets_for(self, event_type: EventTypeLike) -> tuple[_Subscription, ...]:
        targets = self._targets.get(event_type)
        if targets is None:
            targets = tuple(
                s
                for s in self._subscriptions.values()
                if s.event_type is EventType.ANY or s.event_type == event_type
            )
            self._targets[event_type] = targets
        return targets

    def _label(self, event_type: EventTypeLike) -> str:
        label = self._labels.get(event_type)
        if label is None:
            label = self._labels[event_type] = type_label(event_type)
        return label

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop; move subscriptions over from a finished loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        if self._loop is not None and self._loop.is_running() and not self._loop.is_closed():
            raise BusClosed(
                "this EventBus runs on an event loop in another thread; "
                "use publish_sync() from other threads"
            )
        self._loop = loop
        self._publish_lock = asyncio.Lock()
        for sub in self._subscriptions.values():
            self._start_worker(sub, loop)
        return loop

    def _start_worker(self, sub: _Subscription, loop: asyncio.AbstractEventLoop) -> None:
        old = sub.queue
        sub.queue = asyncio.Queue(self.max_queue_size)
        while old is not None and not old.empty():
            sub.queue.put_nowait(old.get_nowait())
        sub.task = loop.create_task(self._work(sub), name=f"event-bus:{sub.id}:{sub.name}")

    def _retire(self, sub: _Subscription) -> None:
        task, queue = sub.task, sub.queue
        if task is None or queue is None:
            return

        async def finish_then_stop() -> None:
            await queue.join()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        retiring = asyncio.get_running_loop().create_task(finish_then_stop())
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _work(self, sub: _Subscription) -> None:
        queue = sub.queue
        assert queue is not None
        _running_subscription.set(sub)
        while True:
            event = await queue.get()
            try:
                await self._run(sub, event)
            finally:
                queue.task_done()

    async def _run(self, sub: _Subscription, event: SystemEvent) -> BaseException | None:
        """Call one handler on one event; never raises except on cancellation."""
        metrics = self._metrics
        started = time.perf_counter() if metrics is not None else 0.0
        error = await self._call(sub, event)
        if metrics is not None:
            metrics.record_handler(
                self._label(event.event_type),
                sub.name,
                time.perf_counter() - started,
                error is None,
            )
        return error

    async def _timed_run(self, sub: _Subscription, event: SystemEvent) -> HandlerOutcome:
        started = time.perf_counter()
        error = await self._run(sub, event)
        return HandlerOutcome(sub.id, sub.name, error, time.perf_counter() - started)

    async def _call(self, sub: _Subscription, event: SystemEvent) -> BaseException | None:
        scope: asyncio.Timeout | None = None
        try:
            if sub.timeout is None:
                result = sub.handler(event)
                if inspect.isawaitable(result):
                    await result
            else:
                async with asyncio.timeout(sub.timeout) as scope:
                    result = sub.handler(event)
                    if inspect.isawaitable(result):
                        await result
            return None
        except TimeoutError as exc:
            error: BaseException = exc
            if scope is not None and scope.expired():
                error = HandlerTimeout(
                    f"handler {sub.name} took longer than {sub.timeout}s on "
                    f"{self._label(event.event_type)} event {event.event_id}; it was cancelled"
                )
            self._log_failure(sub, event, error)
            return error
        except Exception as exc:
            self._log_failure(sub, event, exc)
            return exc

    def _log_failure(self, sub: _Subscription, event: SystemEvent, error: BaseException) -> None:
        logger.error(
            "handler %s failed on %s event %s: %s: %s",
            sub.name,
            self._label(event.event_type),
            event.event_id,
            type(error).__name__,
            error,
            exc_info=error if not isinstance(error, HandlerTimeout) else None,
        )

    def _publish_nowait(self, event: SystemEvent, targets: Iterable[_Subscription]) -> None:
        targets = tuple(targets)
        lock = self._publish_lock
        if lock is not None and lock.locked():
            raise QueueFull("publishers are waiting for queue room; publish_sync cannot wait")
        for sub in targets:
            if sub.queue is not None and sub.queue.full():
                raise QueueFull(
                    f"the queue of handler {sub.name} is full ({self.max_queue_size} events); "
                    "the event was not published (use await publish() to wait for room)"
                )
        for sub in targets:
            sub.queue.put_nowait(event)  # type: ignore[union-attr]

    async def _publish_waiting(
        self, event: SystemEvent, targets: tuple[_Subscription, ...]
    ) -> None:
        """Slow path: wait for room in each queue, one publisher at a time (keeps order)."""
        lock = self._publish_lock
        assert lock is not None
        current = _running_subscription.get()
        if (
            current is not None
            and current in targets
            and current.queue is not None
            and current.queue.full()
        ):
            raise QueueFull(
                f"handler {current.name} published to its own full queue; waiting would deadlock"
            )
        async with lock:
            for sub in targets:
                queue = sub.queue
                if queue is not None:
                    await queue.put(event)

    def _publish_from_thread(self, event: SystemEvent, loop: asyncio.AbstractEventLoop) -> None:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def deliver() -> None:
            try:
                self._publish_nowait(event, self._targets_for(event.event_type))
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError as exc:
            raise BusClosed("the event bus's loop is closed") from exc
        try:
            done.result(timeout=self.sync_publish_timeout)
        except concurrent.futures.TimeoutError as exc:
            raise BusClosed(
                f"the event bus's loop did not take the event within {self.sync_publish_timeout}s"
            ) from exc
