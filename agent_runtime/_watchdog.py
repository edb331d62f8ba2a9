"""The one timeout mechanism of the handler engine: a single timer per bus.

Every handler call with a limit writes its deadline into a :class:`CallSlot`; the
:class:`Watchdog` sleeps until the nearest deadline and cancels the task of each call
past its own. One timer per bus instead of one per call: a call only writes a float,
and the timer fires at most once per timeout period while calls are quick. Queued
delivery (one slot per worker, for its lifetime) and ``dispatch`` (a subscriber's idle
slot, reused call after call) use it alike. The watchdog holds its slots weakly: an
idle slot (no deadline) costs it nothing, so a reused slot stays registered for its
whole life and goes when its subscriber does.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref

from agent_events.agent_runtime.bus_metrics import HandlerTally, LatencyStats
from agent_events.agent_runtime.events import EventTypeLike

__all__ = ["CallSlot", "Watchdog"]


class CallSlot:
    """One task that runs handler calls one at a time, as the watchdog sees it.

    ``deadline`` is the ``time.perf_counter()`` time by which the current call must
    finish (``None`` while idle, ``inf`` without a limit); ``expired`` marks a call the
    watchdog cancelled, so the engine reports a timeout instead of letting the
    cancellation through; ``seconds`` is how long the last call took. The metrics fields
    cache what the engine counts into, looked up only when the event type changes.
    """

    __slots__ = (
        "__weakref__",
        "deadline",
        "expired",
        "latency",
        "seconds",
        "tally",
        "tally_type",
        "task",
    )

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self.task = task
        self.deadline: float | None = None
        self.expired = False
        self.seconds = 0.0
        self.latency: LatencyStats | None = None
        self.tally: HandlerTally | None = None
        self.tally_type: EventTypeLike | None = None


class Watchdog:
    """Cancels every registered call that runs past its deadline.

    ``armed_until`` is when the timer fires next (``inf``: not armed); a call whose
    deadline is later needs no new timer, which is the common case.
    """

    def __init__(self) -> None:
        self._live: weakref.WeakSet[CallSlot] = weakref.WeakSet()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self.armed_until = math.inf

    def register(self, slot: CallSlot) -> None:
        self._live.add(slot)

    def forget(self, slot: CallSlot) -> None:
        self._live.discard(slot)

    def follow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Calls now run on ``loop``: a timer left on another loop would never fire there."""
        if self._timer_loop is not loop:
            self.close()

    def arm(self, when: float) -> None:
        """Fire at ``when`` (``time.perf_counter`` time, as deadlines are), on the running loop."""
        if self._timer is not None:
            self._timer.cancel()
        loop = self._timer_loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(when - time.perf_counter(), 0.0), self._watch)
        self.armed_until = when

    @staticmethod
    def took_back(slot: CallSlot) -> bool:
        """Take back the watchdog's cancel; False if it was not the (only) cancel."""
        if not slot.expired:
            return False
        slot.expired = False
        task = slot.task
        return task is not None and task.uncancel() == 0

    def close(self) -> None:
        """Stop the timer (the slots stay registered); the next deadline arms it again."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_loop = None
        self.armed_until = math.inf

    def _watch(self) -> None:
        """Cancel every call past its deadline, then sleep until the next one."""
        self._timer = None
        self.armed_until = math.inf
        now = time.perf_counter()
        nearest = math.inf
        for slot in self._live:
            deadline = slot.deadline
            if deadline is None:
                continue
            if deadline <= now:
                slot.deadline = None
                task = slot.task
                if task is not None and not task.done():
                    slot.expired = True
                    task.cancel()
            elif deadline < nearest:
                nearest = deadline
        if nearest < math.inf:
            self.arm(nearest)
