"""The one handler engine: how a handler is called, for queued delivery and ``dispatch`` alike.

Every handler call of an :class:`~agent_runtime.event_bus.EventBus` goes through
:meth:`HandlerEngine.serve`, in this order:

1. take the next delivery (an event, with its publisher's context if that held any
   variables);
2. note the call's deadline with the bus's one :class:`Watchdog`;
3. await the subscription's ``call`` (sync handlers come adapted, so this is the one
   call site): in a copy of the publisher's context when one came along
   (:func:`invoke`), else in the worker's (empty) or, for ``dispatch``, the caller's;
4. a raise becomes a logged error, the watchdog's cancel a :class:`HandlerTimeout`;
   any other cancellation goes through;
5. count the outcome and latency (when metrics are on): the one metrics path.

A subscription's worker serves its queue for as long as it lives; ``dispatch`` serves
a one-event source per matching handler, concurrently. A later inline dispatcher (run
handlers in the publisher's turn, move a lagging subscriber onto its own queue) is
another source for ``serve``, not another engine.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol

from agent_events.agent_runtime._watchdog import CallSlot, Watchdog
from agent_events.agent_runtime.bus_metrics import BusMetrics
from agent_events.agent_runtime.errors import HandlerTimeout
from agent_events.agent_runtime.events import EventTypeLike, SystemEvent
from agent_events.agent_runtime.subscription import (
    Delivery,
    DispatchResult,
    HandlerOutcome,
    Subscription,
    type_label,
)

__all__ = ["Deliveries", "HandlerEngine", "invoke"]

logger = logging.getLogger("agent_events.agent_runtime.event_bus")
_FAILED = "handler %s failed on %s event %s: %s: %s"


class Deliveries(Protocol):
    """Where :meth:`HandlerEngine.serve` takes events from: the part of ``asyncio.Queue`` it uses."""

    def empty(self) -> bool: ...
    def get_nowait(self) -> Delivery: ...
    async def get(self) -> Delivery: ...
    def task_done(self) -> None: ...


class _Served(Exception):
    """The one-event source of ``dispatch`` is used up: ``serve`` is done with it."""


class _OneDelivery:
    """A source of exactly one event, in the caller's context (``dispatch``)."""

    __slots__ = ("_item",)

    def __init__(self, event: SystemEvent) -> None:
        self._item: Delivery | None = event

    def empty(self) -> bool:
        return self._item is None

    def get_nowait(self) -> Delivery:
        item, self._item = self._item, None
        assert item is not None
        return item

    async def get(self) -> Delivery:
        raise _Served

    def task_done(self) -> None:
        return None


class _InContext:
    """Awaits ``awaitable`` with each of its steps run in ``context``.

    What a task does with its own context, without the cost of a task per event: the
    handler's coroutine sees the publisher's context variables (trace span, bound log
    fields) while the worker task keeps its own.
    """

    __slots__ = ("_awaitable", "_context")

    def __init__(self, awaitable: Awaitable[object], context: contextvars.Context) -> None:
        self._awaitable = awaitable
        self._context = context

    def __await__(self) -> Generator[Any, Any, object]:
        steps: Generator[Any, Any, object] = self._awaitable.__await__()
        run = self._context.run
        step: Callable[[Any], Any] = steps.send
        arg: Any = None
        while True:
            try:
                signal = run(step, arg)
            except StopIteration as stop:
                return stop.value
            try:
                arg = yield signal
                step = steps.send
            except GeneratorExit:
                run(steps.close)
                raise
            except asyncio.CancelledError as exc:  # what a task throws in: pass it on
                arg, step = exc, steps.throw


def invoke(
    call: Callable[[SystemEvent], Awaitable[object]],
    event: SystemEvent,
    context: contextvars.Context,
) -> Awaitable[object]:
    """``call(event)`` run in ``context``: the call itself and every step of its coroutine."""
    return _InContext(context.run(call, event), context)


class HandlerEngine:
    """Runs handler calls with one timeout mechanism and one metrics path (module docstring)."""

    def __init__(self, metrics: BusMetrics | None) -> None:
        self.metrics = metrics
        self.watchdog = Watchdog()
        self._labels: dict[EventTypeLike, str] = {}
        self._workers: dict[asyncio.Task[Any], Subscription] = {}

    def label(self, event_type: EventTypeLike) -> str:
        """The metrics and log label of ``event_type``, computed once per type."""
        label = self._labels.get(event_type)
        if label is None:
            label = self._labels[event_type] = type_label(event_type)
        return label

    def serving(self, task: asyncio.Task[Any] | None) -> Subscription | None:
        """The subscription whose worker ``task`` is (``None``: not a worker of this bus)."""
        return self._workers.get(task) if task is not None else None

    async def work(self, sub: Subscription) -> None:
        """The worker of ``sub``: serve its queue, in order, one event at a time, until cancelled."""
        task = asyncio.current_task()
        assert sub.queue is not None
        assert task is not None
        slot = CallSlot(task)
        self.watchdog.register(slot)
        self._workers[task] = sub
        try:
            await self.serve(sub, sub.queue, slot)
        finally:
            self.watchdog.forget(slot)
            self._workers.pop(task, None)

    async def serve(self, sub: Subscription, deliveries: Deliveries, slot: CallSlot) -> None:
        """Steps 1-5 of the module docstring for each delivery; the last outcome in ``slot.error``.

        One loop with no call per event beyond the handler's own while nothing
        fails: a queue read without a coroutine while events wait, one clock read,
        a compare for the timeout. A queued event whose publisher had context
        variables (a span, bound log fields) runs in a copy of that context, so its
        handler's own changes stay with the call; one whose publisher had none runs
        in the worker's context, which starts empty.
        """
        get, get_nowait, empty, done = (
            deliveries.get,
            deliveries.get_nowait,
            deliveries.empty,
            deliveries.task_done,
        )
        call = sub.call
        limit = math.inf if sub.timeout is None else sub.timeout
        metrics, watchdog, clock = self.metrics, self.watchdog, time.perf_counter
        event: SystemEvent
        context: contextvars.Context | None
        while True:
            item = await get() if empty() else get_nowait()
            # Not isinstance(): measured 50 ns more per delivery in this hot loop.
            if item.__class__ is tuple:  # with its publisher's context
                event, context = item
            else:
                event, context = item, None  # type: ignore[assignment]
            started = clock()
            deadline = slot.deadline = started + limit
            if deadline < watchdog.armed_until:
                watchdog.arm(deadline)
            error: BaseException | None = None
            try:
                if context is None:
                    await call(event)
                else:
                    await invoke(call, event, context.copy())
            except asyncio.CancelledError as exc:
                error = self._cancelled(slot, sub, event, exc)
            except Exception as exc:  # isolation: a handler's bug stays with its call
                error = exc
                logger.error(
                    _FAILED,
                    sub.name,
                    self.label(event.event_type),
                    event.event_id,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
            finally:
                slot.deadline = None
                done()
            if slot.expired or metrics is not None:
                error = self._settle(slot, sub, event, error, clock() - started)
            if error is not None:  # dispatch's slot is fresh: None until a call fails
                slot.error = error

    async def dispatch(
        self, event: SystemEvent, targets: tuple[Subscription, ...]
    ) -> DispatchResult:
        """Run every target's handler on ``event`` now, concurrently; each one's outcome."""
        if not targets:
            return DispatchResult(event, ())
        self.watchdog.follow(asyncio.get_running_loop())
        if len(targets) == 1:
            return DispatchResult(event, (await self._outcome(targets[0], event),))
        outcomes = await asyncio.gather(*(self._outcome(s, event) for s in targets))
        return DispatchResult(event, tuple(outcomes))

    async def _outcome(self, sub: Subscription, event: SystemEvent) -> HandlerOutcome:
        started = time.perf_counter()
        slot = CallSlot(asyncio.current_task())
        self.watchdog.register(slot)
        try:
            await self.serve(sub, _OneDelivery(event), slot)
        except _Served:
            pass
        finally:
            self.watchdog.forget(slot)
        return HandlerOutcome(sub.id, sub.name, slot.error, time.perf_counter() - started)

    def _cancelled(
        self, slot: CallSlot, sub: Subscription, event: SystemEvent, error: BaseException
    ) -> HandlerTimeout:
        """The watchdog's cancel is a timeout; any other cancellation goes on."""
        if not self.watchdog.took_back(slot):
            raise error
        return self._overdue(sub, event)

    def _settle(
        self,
        slot: CallSlot,
        sub: Subscription,
        event: SystemEvent,
        error: BaseException | None,
        seconds: float,
    ) -> BaseException | None:
        """A timeout the handler swallowed is still a timeout; then count the call.

        Latency and outcome go into objects the slot keeps between calls, looked up
        again only when the event type changes.
        """
        if slot.expired and self.watchdog.took_back(slot):
            error = self._overdue(sub, event)
        metrics = self.metrics
        if metrics is None:
            return error
        latency = slot.latency
        if latency is None:
            latency = slot.latency = metrics.latency_of(sub.name)
        latency.observe(seconds)
        tally = slot.tally
        if tally is None or slot.tally_type is not event.event_type:
            slot.tally_type = event.event_type
            tally = slot.tally = metrics.tally(self.label(event.event_type), sub.name)
        if error is None:
            tally.handled += 1
        else:
            tally.failed += 1
        return error

    def _overdue(self, sub: Subscription, event: SystemEvent) -> HandlerTimeout:
        error = HandlerTimeout(
            f"handler {sub.name} took longer than {sub.timeout}s on "
            f"{self.label(event.event_type)} event {event.event_id}; it was cancelled"
        )
        label = self.label(event.event_type)
        logger.error(_FAILED, sub.name, label, event.event_id, "HandlerTimeout", error)
        return error
