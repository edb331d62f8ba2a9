"""One subscription's delivery state: what is queued for it and who runs its handler.

A subscriber's events normally run inline on the bus's one shared worker
(:mod:`agent_runtime._inline`). When its handler suspends, the rest of that call and
every later event for it go to the subscriber's own worker (``detached``) until the
worker has caught up; then the worker ends and the subscriber rejoins the shared one.
Only one of the two runs the subscriber's handler at any time, so it sees its events
in publish order.

Room is counted per event, not per subscriber: each :class:`Fanout` (the subscribers
of one event type) counts its events in the shared queue, so publishing and serving an
event touch one counter whatever the number of subscribers; a subscriber's backlog is
worked out from those counts only when the queue nears its bound. :class:`Progress`
wakes whoever waits for room or idleness.
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

__all__ = ["Fanout", "Job", "Lane", "Progress", "Resumed"]


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


class Progress:
    """Wakes whoever waits for room or for idleness once the bus's queues move.

    One future for the whole bus, set at most once per batch of events the shared
    worker serves and once per event a subscriber's own worker starts: a waiter
    checks its own condition again when woken.
    """

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None

    def poke(self) -> None:
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


class Lane:
    """Delivery state of one subscription (module docstring).

    ``handed`` counts the events in its own queue not yet started; with the events
    waiting for it in the shared queue (:class:`Fanout` counts those) that is its
    backlog, to which the bound ``max_queue_size`` applies. ``worker`` is the task
    running its handler while it is ``detached`` from the shared worker; ``slot`` is
    that worker's watchdog slot, ``spares`` the idle slots ``dispatch`` calls reuse.
    """

    __slots__ = (
        "call",
        "detached",
        "fanouts",
        "handed",
        "own",
        "progress",
        "slot",
        "spares",
        "sub",
        "worker",
    )

    def __init__(self, sub: Subscription, progress: Progress) -> None:
        self.sub = sub
        self.call = sub.call
        self.progress = progress
        self.handed = 0
        self.own: deque[Job] = deque()
        self.detached = False
        self.fanouts: list[Fanout] = []
        self.worker: asyncio.Task[Any] | None = None
        self.slot = CallSlot(None)
        self.spares: list[CallSlot] = []

    def hand(self, job: Job) -> None:
        """Give ``job`` to the subscriber's own worker, which takes it after what it holds."""
        self.own.append(job)
        if not isinstance(job, Resumed):
            self.handed += 1

    def started(self) -> None:
        """Its own worker started a handed event: one fewer waiting."""
        self.handed -= 1
        self.progress.poke()

    def set_detached(self, detached: bool) -> None:
        """Move to its own worker (``True``) or back to the shared one; fan-outs keep count."""
        if detached is self.detached:
            return
        self.detached = detached
        step = 1 if detached else -1
        for fanout in self.fanouts:
            fanout.lagging += step
        self.progress.poke()

    def drop(self) -> None:
        """Forget everything in its own queue (the bus stops or moves loops)."""
        for job in self.own:
            if isinstance(job, Resumed):
                job.steps.close()
        self.own.clear()
        self.handed = 0
        self.set_detached(False)


class Fanout:
    """The lanes an event type goes to, in subscription order, and what it has queued.

    The bus counts room per event, not per subscriber: ``waiting`` is how many events
    of this fan-out wait in the shared queue, ``lagging`` how many of its lanes are
    detached (their own queues count too). A lane's backlog is the sum over the
    fan-outs it is in (:meth:`SharedWorker.backlog`). ``live`` is false once the
    routing table no longer hands this fan-out out, and for a fan-out that counts
    nothing (``counted=False``: the rest of an entry in flight).
    """

    __slots__ = ("lagging", "lanes", "live", "waiting")

    def __init__(self, lanes: tuple[Lane, ...], *, counted: bool = True) -> None:
        self.lanes = lanes
        self.waiting = 0
        self.live = counted
        self.lagging = 0
        if counted:
            for lane in lanes:
                lane.fanouts.append(self)
                self.lagging += lane.detached

    def retire(self) -> None:
        """No longer handed out: lanes forget it once nothing of it waits."""
        self.live = False
        for lane in self.lanes:
            lane.fanouts = [f for f in lane.fanouts if f.live or f.waiting]
