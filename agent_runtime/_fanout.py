"""Putting one event into every target queue: the paths besides the bus's fast one.

* :class:`PublisherContexts` captures the publisher's context to queue with an event.
* :meth:`SharedWorker.put` queues an event once for all its targets; its fan-out
  counts it against their bound (:meth:`SharedWorker.has_room`).
* :class:`SlowLane` is where a publisher waits for queue room, one at a time, so every
  subscriber keeps one order; ``publish_sync`` never waits (:meth:`SlowLane.put_nowait`).
* :func:`hand_over` runs a ``publish_sync`` from another thread on the bus's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from contextvars import Context, copy_context

from agent_events.agent_runtime._inline import Entry, SharedWorker
from agent_events.agent_runtime._lanes import Fanout, Lane
from agent_events.agent_runtime.errors import AgentEventsError, BusClosed, QueueFull

__all__ = [
    "PublisherContexts",
    "SlowLane",
    "hand_over",
    "refuse_self_deadlock",
]

_ABSENT = object()


class PublisherContexts:
    """The caller's context to queue with an event; ``None`` when it holds no variables.

    Workers start from an empty context, so an empty one needs no switch. Publishers
    rarely change theirs between events, so most events share one object (contexts
    held in queues are objects the garbage collector walks).
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = Context()

    def capture(self) -> Context | None:
        context = copy_context()
        return self.keep(context) if context else None

    def keep(self, context: Context) -> Context:
        """``context``, or the one captured before when it holds the very same values.

        Compared by identity, not ``==``: a variable's value may have an ``__eq__``
        that is costly, raises (an array) or lies.
        """
        last = self.last
        if len(context) == len(last) and all(
            last.get(var, _ABSENT) is value for var, value in context.items()
        ):
            return last
        self.last = context
        return context


class SlowLane:
    """Publishers waiting for queue room, in arrival order (one lock per loop)."""

    def __init__(self) -> None:
        self.waiting = 0
        self._lock = asyncio.Lock()

    async def put(self, entry: Entry, bound: int, shared: SharedWorker) -> None:
        """Wait for room for ``entry`` with each target in turn, then queue it for all.

        The counter is raised before anything can yield, so later publishers queue
        behind this one (order).
        """
        self.waiting += 1
        try:
            async with self._lock:
                for lane in entry[2].lanes:
                    while shared.backlog(lane) >= bound:
                        await shared.progress.changed()
                shared.put(entry)
        finally:
            self.waiting -= 1

    def put_nowait(self, entry: Entry, bound: int, shared: SharedWorker) -> None:
        """Queue ``entry`` for every target at once, or for none (:class:`QueueFull`)."""
        if self.waiting:
            raise QueueFull("publishers are waiting for queue room; publish_sync cannot wait")
        targets = entry[2]
        if not targets.lanes:
            return
        if not shared.has_room(targets, bound):
            full = next(lane for lane in targets.lanes if shared.backlog(lane) >= bound)
            raise QueueFull(
                f"the queue of handler {full.sub.name} is full ({bound} events); "
                "the event was not published (use await publish() to wait for room)"
            )
        shared.put(entry)


def refuse_self_deadlock(current: Lane, targets: Fanout, bound: int, shared: SharedWorker) -> None:
    """A handler waiting for room in its own queue would wait forever: refuse it."""
    if current in targets.lanes and shared.backlog(current) >= bound:
        raise QueueFull(
            f"handler {current.sub.name} published to its own full queue; waiting would deadlock"
        )


def hand_over(deliver: Callable[[], None], loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Run ``deliver`` on ``loop``'s thread and wait (up to ``timeout``) for its outcome."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            deliver()
        except AgentEventsError as exc:  # QueueFull: raised in the publishing thread
            done.set_exception(exc)
        else:
            done.set_result(None)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError as exc:
        raise BusClosed("the event bus's loop is closed") from exc
    try:
        done.result(timeout=timeout)
    except concurrent.futures.TimeoutError as exc:
        raise BusClosed(f"the event bus's loop did not take the event within {timeout}s") from exc
