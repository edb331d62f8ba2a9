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
import math
import threading
import time
from collections.abc import Collection, Iterable
from enum import Enum
from types import EllipsisType

from agent_events.agent_runtime.bus_metrics import (
    BusMetrics,
    HandlerTally,
    LatencyStats,
    MetricsSnapshot,
)
from agent_events.agent_runtime.errors import (
    BusClosed,
    ConfigError,
    HandlerTimeout,
    InvalidEventError,
    QueueFull,
    SubscriptionError,
)
from agent_events.agent_runtime.events import (
    EventType,
    EventTypeLike,
    ForeignEventType,
    SystemEvent,
    event_type_key,
)
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
_ANY = EventType.ANY
_running_subscription: contextvars.ContextVar[Subscription | None] = contextvars.ContextVar(
    "agent_events_running_subscription", default=None
)


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
        self._subscriptions: dict[str, Subscription] = {}
        self._targets: dict[EventTypeLike, tuple[Subscription, ...]] = {}
        # The same, keyed by id() for enum members (singletons): Enum.__hash__ is
        # Python code, id() is not. Foreign types are never put here (not singletons).
        self._targets_by_id: dict[int, tuple[EventTypeLike, tuple[Subscription, ...], str]] = {}
        self._loop_thread: int | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publish_lock: asyncio.Lock | None = None
        # Publishers in the slow path (waiting for room, or for the lock): later
        # publishers queue behind them so every subscriber keeps one order.
        self._waiting_publishers = 0
        self._closed = False
        self._labels: dict[EventTypeLike, str] = {}
        # Subscriptions with a worker (also retiring ones): what the watchdog scans.
        self._live: set[Subscription] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_at = math.inf

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
        self._live.clear()
        self._disarm_watchdog()
        self._loop = None

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
        sub = Subscription(f"sub-{next(self._ids)}", event_type, handler, limit)
        loop = self._bind()
        self._subscriptions[sub.id] = sub
        self._forget_targets()
        self._start_worker(sub, loop)
        return sub.id

    async def unsubscribe(self, subscription_id: str) -> bool:
        """Stop delivering new events to a subscription; returns whether it existed.

        Events already queued for it are still handled (``join`` waits for them).
        """
        sub = self._subscriptions.pop(subscription_id, None)
        if sub is None:
            return False
        self._forget_targets()
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
        if not self._on_bound_loop():
            self._bind()
        current = _running_subscription.get()
        if current is not None:
            self._refuse_self_deadlock(current, targets)
        if self._waiting_publishers:
            await self._publish_waiting(event, targets, 0)
            return
        # Fast path: the event object is shared, one put per subscriber, no checks
        # beyond the queue's own; a full queue sends the rest to the slow path.
        try:
            for sub in targets:
                sub.queue.put_nowait(event)  # type: ignore[union-attr]
        except asyncio.QueueFull:
            await self._publish_waiting(event, targets, targets.index(sub))

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
        self, event: SystemEvent, targets: tuple[Subscription, ...]
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

    def _accept(self, event: SystemEvent, closed_ok: bool = False) -> tuple[Subscription, ...]:
        """Validate and count an event; the subscriptions it goes to."""
        if self._closed and not closed_ok:
            raise BusClosed("the event bus is stopped; start it again before publishing")
        if not isinstance(event, SystemEvent):
            raise InvalidEventError(f"publish takes a SystemEvent, got {type(event).__name__}")
        event_type = event.event_type
        if event_type is _ANY:
            raise InvalidEventError(
                "EventType.ANY is a subscription wildcard; it cannot be published"
            )
        metrics = self._metrics
        cached = self._targets_by_id.get(id(event_type))
        if cached is not None and cached[0] is event_type:
            if metrics is not None:
                metrics.published[cached[2]] += 1
            return cached[1]
        if metrics is not None:
            metrics.published[self._label(event_type)] += 1
        return self._targets_for(event_type)

    def _targets_for(self, event_type: EventTypeLike) -> tuple[Subscription, ...]:
        targets = self._targets.get(event_type)
        if targets is None:
            targets = tuple(
                s
                for s in self._subscriptions.values()
                if s.event_type is _ANY or s.event_type == event_type
            )
            self._targets[event_type] = targets
            if isinstance(event_type, Enum):
                self._targets_by_id[id(event_type)] = (event_type, targets, self._label(event_type))
        return targets

    def _forget_targets(self) -> None:
        """Drop the cached fan-out lists; the next publish of each type rebuilds them."""
        self._targets.clear()
        self._targets_by_id.clear()

    def _on_bound_loop(self) -> bool:
        """Whether the caller runs on the bus's loop, without ``get_running_loop()``.

        A running loop that runs in this thread is the thread's running loop (loops
        do not nest), and two cheap calls beat ``get_running_loop()`` here.
        """
        loop = self._loop
        return loop is not None and loop.is_running() and threading.get_ident() == self._loop_thread

    def _label(self, event_type: EventTypeLike) -> str:
        label = self._labels.get(event_type)
        if label is None:
            label = self._labels[event_type] = type_label(event_type)
        return label

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
        self._publish_lock = asyncio.Lock()
        self._waiting_publishers = 0
        self._disarm_watchdog()
        self._live.clear()
        for sub in self._subscriptions.values():
            self._start_worker(sub, loop)
        return loop

    def _start_worker(self, sub: Subscription, loop: asyncio.AbstractEventLoop) -> None:
        old = sub.queue
        sub.queue = asyncio.Queue(self.max_queue_size)
        while old is not None and not old.empty():
            sub.queue.put_nowait(old.get_nowait())
        sub.deadline = None
        sub.expired = False
        sub.task = loop.create_task(self._work(sub), name=f"event-bus:{sub.id}:{sub.name}")
        self._live.add(sub)

    def _retire(self, sub: Subscription) -> None:
        task, queue = sub.task, sub.queue
        if task is None or queue is None:
            return

        async def finish_then_stop() -> None:
            await queue.join()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._live.discard(sub)

        retiring = asyncio.get_running_loop().create_task(finish_then_stop())
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _work(self, sub: Subscription) -> None:
        """Run ``sub``'s handler on each event of its queue, in order, one at a time.

        Per event: one queue read (no coroutine while events are waiting), one
        handler call, one ``task_done``. A timeout costs one clock read and a
        compare: the bus's single watchdog timer enforces it (see :meth:`_watch`),
        not a timer per call. Metrics cost one more clock read and two increments
        on objects looked up only when the event type changes.
        """
        queue = sub.queue
        task = asyncio.current_task()
        assert queue is not None
        assert task is not None
        _running_subscription.set(sub)
        handler, is_async, limit, metrics = sub.handler, sub.is_async, sub.timeout, self._metrics
        get, get_nowait, empty, task_done = (
            queue.get,
            queue.get_nowait,
            queue.empty,
            queue.task_done,
        )
        perf_counter = time.perf_counter
        timed = limit is not None or metrics is not None
        started = 0.0
        latency = metrics.latency_of(sub.name) if metrics is not None else None
        tally: HandlerTally | None = None
        tally_type: EventTypeLike | None = None
        while True:
            # No coroutine per event while the queue has some (get() would make one).
            event = await get() if empty() else get_nowait()
            if timed:
                started = perf_counter()
                if limit is not None:
                    deadline = sub.deadline = started + limit
                    if deadline < self._watchdog_at:
                        self._arm_watchdog(deadline)
            error: BaseException | None = None
            try:
                if is_async:
                    await handler(event)  # type: ignore[misc]
                else:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result
            except asyncio.CancelledError:
                if not self._was_overdue(sub, task):
                    raise
                error = self._overdue(sub, event)
            except Exception as exc:
                error = exc
                self._log_failure(sub, event, exc)
            finally:
                sub.deadline = None
                task_done()
            if sub.expired and self._was_overdue(sub, task):  # it swallowed the cancel
                error = self._overdue(sub, event)
            if metrics is not None:
                latency.observe(perf_counter() - started)  # type: ignore[union-attr]
                if event.event_type is not tally_type or tally is None:
                    tally_type = event.event_type
                    tally = metrics.tally(self._label(tally_type), sub.name)
                if error is None:
                    tally.handled += 1
                else:
                    tally.failed += 1

    # ------------------------------------------------------------------ watchdog

    def _arm_watchdog(self, when: float) -> None:
        """Run :meth:`_watch` at ``when`` (``time.perf_counter`` time, as deadlines are)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        loop = self._loop
        if loop is None:
            self._watchdog, self._watchdog_at = None, math.inf
            return
        self._watchdog = loop.call_later(max(when - time.perf_counter(), 0.0), self._watch)
        self._watchdog_at = when

    def _disarm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = None
        self._watchdog_at = math.inf

    def _watch(self) -> None:
        """Cancel every worker call past its deadline, then sleep until the next one.

        One timer per bus instead of one per call: a worker only writes its
        deadline, and this runs at most once per timeout period while calls are
        quick. The cancelled call is marked ``expired`` so the worker reports a
        :class:`HandlerTimeout` instead of stopping.
        """
        self._watchdog = None
        self._watchdog_at = math.inf
        now = time.perf_counter()
        nearest = math.inf
        for sub in self._live:
            deadline = sub.deadline
            if deadline is None:
                continue
            if deadline <= now:
                sub.deadline = None
                if sub.task is not None and not sub.task.done():
                    sub.expired = True
                    sub.task.cancel()
            elif deadline < nearest:
                nearest = deadline
        if nearest < math.inf:
            self._arm_watchdog(nearest)

    @staticmethod
    def _was_overdue(sub: Subscription, task: asyncio.Task[None]) -> bool:
        """Take back the watchdog's cancel; False if it was not the (only) cancel."""
        if not sub.expired:
            return False
        sub.expired = False
        return task.uncancel() == 0

    def _overdue(self, sub: Subscription, event: SystemEvent) -> HandlerTimeout:
        error = HandlerTimeout(
            f"handler {sub.name} took longer than {sub.timeout}s on "
            f"{self._label(event.event_type)} event {event.event_id}; it was cancelled"
        )
        self._log_failure(sub, event, error)
        return error

    async def _run(self, sub: Subscription, event: SystemEvent) -> BaseException | None:
        """Call one handler on one event (for :meth:`dispatch`); raises only on cancellation."""
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

    async def _timed_run(self, sub: Subscription, event: SystemEvent) -> HandlerOutcome:
        started = time.perf_counter()
        error = await self._run(sub, event)
        return HandlerOutcome(sub.id, sub.name, error, time.perf_counter() - started)

    async def _call(self, sub: Subscription, event: SystemEvent) -> BaseException | None:
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

    def _log_failure(self, sub: Subscription, event: SystemEvent, error: BaseException) -> None:
        logger.error(
            "handler %s failed on %s event %s: %s: %s",
            sub.name,
            self._label(event.event_type),
            event.event_id,
            type(error).__name__,
            error,
            exc_info=error if not isinstance(error, HandlerTimeout) else None,
        )

    def _publish_nowait(self, event: SystemEvent, targets: Iterable[Subscription]) -> None:
        targets = tuple(targets)
        if self._waiting_publishers:
            raise QueueFull("publishers are waiting for queue room; publish_sync cannot wait")
        for sub in targets:
            if sub.queue is not None and sub.queue.full():
                raise QueueFull(
                    f"the queue of handler {sub.name} is full ({self.max_queue_size} events); "
                    "the event was not published (use await publish() to wait for room)"
                )
        for sub in targets:
            sub.queue.put_nowait(event)  # type: ignore[union-attr]

    @staticmethod
    def _refuse_self_deadlock(current: Subscription, targets: tuple[Subscription, ...]) -> None:
        """A handler waiting for room in its own queue would wait forever: refuse it."""
        queue = current.queue
        if queue is not None and queue.full() and current in targets:
            raise QueueFull(
                f"handler {current.name} published to its own full queue; waiting would deadlock"
            )

    async def _publish_waiting(
        self, event: SystemEvent, targets: tuple[Subscription, ...], start: int
    ) -> None:
        """Slow path: wait for room in each queue from ``start`` on, one publisher at a time.

        The targets before ``start`` already have the event. The counter is raised
        before anything can yield, so later publishers queue behind this one (order).
        """
        lock = self._publish_lock
        assert lock is not None
        self._waiting_publishers += 1
        try:
            async with lock:
                for sub in targets[start:]:
                    queue = sub.queue
                    if queue is not None:
                        await queue.put(event)
        finally:
            self._waiting_publishers -= 1

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
