"""The bus's one shared worker: each event's handlers run inline, one after another.

A hand-written fan-out awaits the handlers in turn on one task: one task switch per
event. The shared worker does the same while handlers finish without suspending, and
keeps the bus's isolation by never waiting on one: it takes each call's first step,
and when the call suspends (it awaits I/O, a lock, a sleep) the task that took the
step stays with the call, as that subscriber's own worker, while a fresh task takes
over the shared queue. The subscriber's later events go to its own worker until it
has caught up (:mod:`agent_runtime._lanes`); a slow or hung handler so holds up only
its own subscriber, where the watchdog's deadline applies as before. One task runs a
whole call, so what a handler ties to its task (``asyncio.timeout``, a cancel) holds.

A call whose publisher had no context variables runs in the shared task's own
(empty) context; a handler that leaves a variable set there also makes a fresh task
take over, so the change reaches no other handler.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from typing import Any, TypeAlias

from agent_events.agent_runtime._engine import HandlerEngine
from agent_events.agent_runtime._lanes import Lane, Resumed
from agent_events.agent_runtime.events import SystemEvent

__all__ = ["Entry", "SharedWorker"]

Entry: TypeAlias = tuple[SystemEvent, contextvars.Context | None, tuple[Lane, ...]]
"""One published event: its publisher's context (``None``: it held no variables) and
the subscribers it goes to, decided at publish time."""

logger = logging.getLogger(__name__)

_DONE: Any = object()
_TAINTED: Any = object()  # a handler left a context variable in the shared task's context
_BATCH = 256  # entries between two yields, so the subscribers' own workers get turns


class SharedWorker:
    """The shared queue of entries and the task that serves it (module docstring).

    ``stepping`` is the subscriber whose handler runs inline right now (the bus asks
    when a handler publishes into its own full queue). ``_rest`` is what a task that
    left the shared queue had not done yet of its last entry: its successor starts there.
    """

    def __init__(self, engine: HandlerEngine) -> None:
        self.entries: deque[Entry] = deque()
        self.task: asyncio.Task[None] | None = None
        self.stepping: Lane | None = None
        self._engine = engine
        self._wake: asyncio.Future[None] | None = None
        self._rest: Entry | None = None
        self.stopping = False
        """Set by the bus before it cancels this worker."""
        self._cancelled_by_handler = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a task serving the shared queue, in a fresh empty context."""
        home = contextvars.Context()
        self.task = loop.create_task(self._run(home), name="event-bus:shared", context=home)

    def put(self, entry: Entry) -> None:
        """Queue ``entry`` (room was checked per subscriber) and wake the worker."""
        self.entries.append(entry)
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def drop(self) -> None:
        self.stopping = False
        self.entries.clear()
        self._wake = None
        self._rest = None

    async def _run(self, home: contextvars.Context) -> None:
        """Serve entries until the bus stops, or until a call keeps this task (then finish it).

        A handler run inline that cancels its own task (``current_task().cancel()``) cancels
        this worker at its next await: that cancel is the handler's, so a fresh worker takes
        the shared queue and every other subscriber goes on.
        """
        loop = asyncio.get_running_loop()
        try:
            await self._serve(home, loop)
        except asyncio.CancelledError:
            if not self._cancelled_by_handler or self.stopping:
                raise  # the bus stops, the loop closes, or a kept call's own business
            self._cancelled_by_handler = False
            logger.warning("a handler cancelled the bus's shared worker; a fresh one goes on")
            self.start(loop)

    async def _serve(self, home: contextvars.Context, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            if not self.entries and self._rest is None:
                wake = self._wake = loop.create_future()
                await wake
                continue
            kept = self._serve_batch(home.__len__)
            if kept is None:
                # Nothing else runs while a batch is served: a cancel requested meanwhile
                # came from a handler run inline.
                task = self.task
                if task is not None and task.cancelling():
                    self._cancelled_by_handler = True
                await asyncio.sleep(0)
                continue
            self.start(loop)  # a fresh task takes the shared queue from here
            if kept is not _TAINTED:
                lane, rest = kept
                await self._engine.finish(lane, rest)
            return

    def _serve_batch(self, tainted: Any) -> Any:
        """Up to ``_BATCH`` entries; what this task must keep (``None``: nothing)."""
        entries = self.entries
        counted = self._engine.metrics is not None
        for _ in range(_BATCH):
            rest, self._rest = self._rest, None
            if rest is not None:
                entry = rest
            elif entries:
                entry = entries.popleft()
            else:
                return None
            kept = self._serve_entry(entry, tainted, counted)
            if kept is not None:
                return kept
        return None

    def _serve_entry(self, entry: Entry, tainted: Any, counted: bool) -> Any:
        event, context, targets = entry
        for lane in targets:
            if lane.detached:  # lagging: its own worker keeps its order
                lane.hand(event if context is None else (event, context))
                continue
            lane.queued -= 1
            if lane.waiter is not None:
                lane.poke()
            self.stepping = lane
            ctx = None if context is None else context.copy()
            started = time.perf_counter() if counted else 0.0
            error: BaseException | None = None
            steps = None
            try:
                steps = lane.call(event).__await__()  # a coroutine function: runs nothing yet
                signal = next(steps, _DONE) if ctx is None else ctx.run(next, steps, _DONE)
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 (logged by failed)
                signal, error = _DONE, exc
                self._engine.failed(lane.sub, event, exc)
            self.stepping = None
            if signal is not _DONE:
                return self._leave(entry, lane, signal, steps, ctx, started)
            if counted:
                self._engine.count(lane.slot, lane.sub, event, error, time.perf_counter() - started)
            if ctx is None and tainted():
                return self._leave(entry, lane, signal, steps, ctx, started)
        return None

    def _leave(
        self,
        entry: Entry,
        lane: Lane,
        signal: object,
        steps: Any,
        ctx: contextvars.Context | None,
        started: float,
    ) -> Any:
        """This task leaves the shared queue; its successor starts after ``lane``."""
        event, context, targets = entry
        after = targets[targets.index(lane) + 1 :]
        if after:
            self._rest = (event, context, after)
        if signal is _DONE:
            return _TAINTED
        lane.detached = True
        return lane, Resumed(event, steps, signal, ctx, started or time.perf_counter())
