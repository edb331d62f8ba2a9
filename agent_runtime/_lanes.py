"""One subscription's delivery state: what is queued for it and who runs its handler.

A subscriber's events normally run inline on the bus's one shared worker
(:mod:`agent_runtime._inline`). When its handler suspends, the rest of that call and
every later event for it go to the subscriber's own worker (``detached``) until the
worker has caught up; then the worker ends and the subscriber rejoins the shared one. Only one of the two runs the
subscriber's handler at any time, so it sees its events in publish order.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Generator
from typing import Any, TypeAlias

from agent_events.agent_runtime._watchdog import CallSlot
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.subscription import Delivery, Subscription

__all__ = ["Job", "Lane", "Resumed"]


class Resumed:
    """The rest of a handler call that suspended on the shared worker, for its own worker.

    The shared worker took the call's first step (in ``context``; ``None``: the
    subscriber's home context, which its worker task runs in) and got ``signal`` back,
    the future it waits on. Awaiting this yields that same future from the subscriber's
    worker and steps on from there, as the task would have.
    """

    __slots__ = ("context", "event", "signal", "started", "steps")

    def __init__(
        self,
        event: SystemEvent,
        steps: Generator[Any, Any, object],
        signal: object,
        context: contextvars.Context | None,
        started: float,
    ) -> None:
        self.event = event
        self.steps = steps
        self.signal = signal
        self.context = context
        self.started = started

    def __await__(self) -> Generator[Any, Any, object]:
        steps, context, signal = self.steps, self.context, self.signal
        step: Any
        while True:
            try:
                arg = yield signal
                step = steps.send
            except GeneratorExit:
                steps.close()
                raise
            except asyncio.CancelledError as exc:  # what a task throws in: pass it on
                arg, step = exc, steps.throw
            try:
                signal = step(arg) if context is None else context.run(step, arg)
            except StopIteration as stop:
                return stop.value


Job: TypeAlias = Delivery | Resumed
"""What a subscriber's own worker takes: a queued event, or the rest of a suspended call."""


class Lane:
    """Delivery state of one subscription (module docstring).

    ``queued`` counts its events published and not yet started (in the shared queue
    or its own): the bound ``max_queue_size`` applies to it. ``worker`` is the task
    running its handler while it is ``detached`` from the shared worker.
    """

    __slots__ = ("call", "detached", "own", "queued", "slot", "sub", "waiter", "worker")

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.call = sub.call
        self.queued = 0
        self.own: deque[Job] = deque()
        self.detached = False
        self.worker: asyncio.Task[Any] | None = None
        self.slot = CallSlot(None)
        self.waiter: asyncio.Future[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued for it and its handler not running on its own worker."""
        return not self.queued and not self.detached

    def hand(self, job: Job) -> None:
        """Give ``job`` to the subscriber's own worker, which takes it after what it holds."""
        self.own.append(job)

    def poke(self) -> None:
        """Something changed (room, idleness): wake whoever waits on this lane."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self) -> None:
        """Wait for the next :meth:`poke`."""
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = asyncio.get_running_loop().create_future()
        await waiter

    async def until_idle(self) -> None:
        while not self.idle:
            await self.changed()

    def drop(self) -> int:
        """Forget everything queued (the bus stops or moves loops); how many events that was."""
        dropped = self.queued
        for job in self.own:
            if isinstance(job, Resumed):
                job.steps.close()
        self.own.clear()
        self.queued = 0
        self.detached = False
        self.waiter = None
        return dropped
