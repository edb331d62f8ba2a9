"""The one handler engine: how a handler is called, for every path of the bus.

A handler call goes through these steps, whichever task runs it:

1. take the next delivery (an event, with its publisher's context if that held any
   variables);
2. note the call's deadline with the bus's one :class:`Watchdog` (a call that finishes
   without suspending needs none: nothing could cancel it anyway);
3. await the subscription's ``call`` (sync handlers come adapted, so this is the one
   call site): in a copy of the publisher's context when one came along
   (:func:`invoke`), else in the subscriber's home context or, for ``dispatch``, the
   caller's;
4. a raise becomes a logged error (:meth:`HandlerEngine.failed`), the watchdog's cancel
   a :class:`HandlerTimeout`; any other cancellation goes through;
5. count the outcome and latency (when metrics are on): the one metrics path
   (:meth:`HandlerEngine.count`).

Queued events run first on the bus's shared worker (:mod:`agent_runtime._inline`),
which takes steps 1-5 inline for calls that do not suspend; a call that suspends, and
the subscriber's later events until it catches up, run on the subscriber's own worker
(:meth:`HandlerEngine.finish`). ``dispatch`` runs one call per matching handler,
concurrently (:meth:`HandlerEngine.run_one`), each on an idle slot its subscriber keeps
for the next dispatch.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from agent_events.agent_runtime._lanes import Job, Lane, Resumed
from agent_events.agent_runtime._watchdog import CallSlot, Watchdog
from agent_events.agent_runtime.bus_metrics import BusMetrics
from agent_events.agent_runtime.errors import HandlerTimeout
from agent_events.agent_runtime.events import EventTypeLike, SystemEvent
from agent_events.agent_runtime.subscription import (
    DispatchResult,
    HandlerOutcome,
    Subscription,
    type_label,
)

__all__ = ["HandlerEngine", "invoke"]

logger = logging.getLogger("agent_events.agent_runtime.event_bus")
_FAILED = "handler %s failed on %s event %s: %s: %s"
_SPARE_SLOTS = 8  # idle dispatch slots a subscriber keeps: its usual concurrent dispatches


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
        self._workers: dict[asyncio.Task[Any], Lane] = {}

    def label(self, event_type: EventTypeLike) -> str:
        """The metrics and log label of ``event_type``, computed once per type."""
        label = self._labels.get(event_type)
        if label is None:
            label = self._labels[event_type] = type_label(event_type)
        return label

    def serving(self, task: asyncio.Task[Any] | None) -> Lane | None:
        """The subscriber whose worker ``task`` is (``None``: not a worker of this bus).

        A handler running inline on the shared worker sees its subscriber's worker as
        the current task, so this finds it too.
        """
        return self._workers.get(task) if task is not None else None

    async def finish(self, lane: Lane, first: Job | None) -> None:
        """Be ``lane``'s own worker: run ``first``, then what it was handed, in order.

        The current task is the one that took ``first``'s first step (or a fresh one);
        once the lane's queue is empty the lane goes back to the shared worker and the
        task ends.
        """
        task = asyncio.current_task()
        assert task is not None
        slot = lane.slot
        slot.task = lane.worker = task
        self.watchdog.register(slot)
        self._workers[task] = lane
        try:
            if first is not None:
                await self._run_job(lane, slot, first)
            own = lane.own
            while own:
                await self._run_job(lane, slot, own.popleft())
            lane.set_detached(False)  # caught up: back to the shared worker
        finally:
            self.watchdog.forget(slot)
            self._workers.pop(task, None)
            if lane.worker is task:
                lane.worker = None

    async def _run_job(self, lane: Lane, slot: CallSlot, job: Job) -> None:
        sub = lane.sub
        if isinstance(job, Resumed):  # the rest of a call that suspended on the shared worker
            await self.run_one(slot, sub, job.event, job, job.started)
            return
        lane.started()
        started = time.perf_counter()
        if isinstance(job, tuple):
            event, context = job
            await self.run_one(slot, sub, event, invoke(sub.call, event, context.copy()), started)
        else:
            await self.run_one(slot, sub, job, sub.call(job), started)

    async def run_one(
        self,
        slot: CallSlot,
        sub: Subscription,
        event: SystemEvent,
        call: Awaitable[object],
        started: float,
    ) -> BaseException | None:
        """Steps 2-5 of the module docstring for one call; its error (``None``: it succeeded).

        How long the call took is left in ``slot.seconds``.
        """
        limit = math.inf if sub.timeout is None else sub.timeout
        deadline = slot.deadline = started + limit
        watchdog = self.watchdog
        if deadline < watchdog.armed_until:
            watchdog.arm(deadline)
        error: BaseException | None = None
        try:
            await call
        except asyncio.CancelledError as exc:
            error = self._cancelled(slot, sub, event, exc)
        except Exception as exc:  # noqa: BLE001 (isolation: logged by failed)
            error = exc
            self.failed(sub, event, exc)
        finally:
            slot.deadline = None
        seconds = slot.seconds = time.perf_counter() - started
        if slot.expired or self.metrics is not None:
            error = self._settle(slot, sub, event, error, seconds)
        return error

    def failed(self, sub: Subscription, event: SystemEvent, exc: BaseException) -> None:
        """Log a handler's raise (isolation: it stays with its call)."""
        logger.error(
            _FAILED,
            sub.name,
            self.label(event.event_type),
            event.event_id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    def count(
        self,
        slot: CallSlot,
        sub: Subscription,
        event: SystemEvent,
        error: BaseException | None,
        seconds: float,
    ) -> None:
        """Count a call that finished inline (metrics on; no deadline, so no timeout).

        The common case, the same subscriber and event type as its last call, takes
        the tally and latency the slot keeps without a lookup.
        """
        tally = slot.tally
        latency = slot.latency
        if tally is None or latency is None or slot.tally_type is not event.event_type:
            self._settle(slot, sub, event, error, seconds)
            return
        latency.observe(seconds)
        if error is None:
            tally.handled += 1
        else:
            tally.failed += 1

    async def dispatch(self, event: SystemEvent, targets: tuple[Lane, ...]) -> DispatchResult:
        """Run every target's handler on ``event`` now, concurrently; each one's outcome."""
        if not targets:
            return DispatchResult(event, ())
        loop = asyncio.get_running_loop()
        self.watchdog.follow(loop)
        if len(targets) == 1:  # no gather: the call runs in the caller's task
            outcome = await self._outcome(targets[0], event, asyncio.current_task(loop))
            return DispatchResult(event, (outcome,))
        outcomes = await asyncio.gather(*(self._outcome(lane, event, None) for lane in targets))
        return DispatchResult(event, tuple(outcomes))

    async def _outcome(
        self, lane: Lane, event: SystemEvent, task: asyncio.Task[Any] | None
    ) -> HandlerOutcome:
        """One ``dispatch`` call on an idle slot of ``lane`` (``task``: the current one).

        A slot is busy from here until the call ends: a handler that dispatches to its
        own subscriber again (nested, same task) or a concurrent dispatch finds none
        idle and gets a fresh one, which stays for later calls.
        """
        spares = lane.spares
        if spares:
            slot = spares.pop()
        else:
            slot = CallSlot(None)
            self.watchdog.register(slot)
        slot.task = asyncio.current_task() if task is None else task
        sub = lane.sub
        try:
            error = await self.run_one(slot, sub, event, sub.call(event), time.perf_counter())
        finally:
            slot.task = None
            if len(spares) < _SPARE_SLOTS:
                spares.append(slot)
        return HandlerOutcome(sub.id, sub.name, error, slot.seconds)

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
