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
from collections.abc import Coroutine, Generator
from typing import Any, TypeAlias

from agent_events.agent_runtime._engine import HandlerEngine, invoke
from agent_events.agent_runtime._lanes import Fanout, Lane, Progress, Resumed
from agent_events.agent_runtime.events import SystemEvent

__all__ = ["Entry", "SharedWorker"]

Entry: TypeAlias = tuple[SystemEvent, contextvars.Context | None, Fanout]
"""One published event: its publisher's context (``None``: it held no variables) and
the subscribers it goes to, decided at publish time (their fan-out counts it while it
waits in the shared queue)."""

logger = logging.getLogger(__name__)

_BATCH = 256  # entries between two yields, so the subscribers' own workers get turns


class SharedWorker:
    """The shared queue of entries and the task that serves it (module docstring).

    ``stepping`` is the subscriber whose handler runs inline right now (the bus asks
    when a handler publishes into its own full queue; :class:`_Serving` asks when the
    task yields). ``_rest`` is what a task that left the shared queue had not done yet
    of its last entry: its successor starts there. ``_current`` is the entry being
    served, while a batch is (``None`` between batches, when other tasks run); its
    subscribers after ``stepping`` have not started it yet.

    Room is counted per event, not per subscriber (:meth:`backlog`): the fan-out of
    an entry counts it while it waits in ``entries``, a lagging subscriber counts
    what it was handed, and the entry in flight counts for those not yet served.
    """

    def __init__(self, engine: HandlerEngine) -> None:
        self.entries: deque[Entry] = deque()
        self.progress = Progress()
        self.task: asyncio.Task[None] | None = None
        self.stepping: Lane | None = None
        self._engine = engine
        self._wake: asyncio.Future[None] | None = None
        self._rest: Entry | None = None
        self._current: Entry | None = None
        self._started = 0.0  # when the running inline call started (metrics on only)
        self.stopping = False
        """Set by the bus before it cancels this worker."""
        self._cancelled_by_handler = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a task serving the shared queue, in a fresh empty context."""
        home = contextvars.Context()
        self.task = loop.create_task(self._run(home), name="event-bus:shared", context=home)

    def put(self, entry: Entry) -> None:
        """Queue ``entry`` (room was checked per subscriber) and wake the worker."""
        entry[2].waiting += 1
        self.entries.append(entry)
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def has_room(self, targets: Fanout, bound: int) -> bool:
        """Whether each of ``targets`` has fewer than ``bound`` events waiting.

        No subscriber has more waiting in the shared queue than the queue holds, plus
        one in flight: below the bound that answers without looking at any of them.
        """
        near = len(self.entries) + 2  # the most any lane may hold once this one is in
        if near <= bound and not targets.lagging:
            return True
        for lane in targets.lanes:  # a lagging lane's own queue counts too
            if near + lane.handed > bound and self.backlog(lane) >= bound:
                return False
        return True

    def backlog(self, lane: Lane) -> int:
        """The events published to ``lane`` and not started yet (queue depth, bound)."""
        waiting = lane.handed + sum(fanout.waiting for fanout in lane.fanouts)
        rest = self._rest
        if rest is not None:
            return waiting + (lane in rest[2].lanes)
        current = self._current
        if current is not None:  # a handler inline asks (nobody else runs mid-batch)
            targets = current[2].lanes
            stepping = self.stepping
            after = targets[targets.index(stepping) + 1 :] if stepping in targets else targets
            waiting += lane in after
        return waiting

    def idle(self, lane: Lane) -> bool:
        """Nothing waits for ``lane`` and its handler runs on no worker of its own."""
        return not lane.detached and not self.backlog(lane)

    async def until_idle(self, lane: Lane) -> None:
        while not self.idle(lane):
            await self.progress.changed()

    def drop(self) -> None:
        self.stopping = False
        for _, _, fanout in self.entries:
            fanout.waiting -= 1
        self.entries.clear()
        self.progress.waiter = None
        self._wake = None
        self._rest = None
        self._current = None
        self.stepping = None

    async def _run(self, home: contextvars.Context) -> None:
        """Serve entries until the bus stops, or until a call keeps this task (then finish it).

        A handler run inline that cancels its own task (``current_task().cancel()``) cancels
        this worker at its next await: that cancel is the handler's, so a fresh worker takes
        the shared queue and every other subscriber goes on.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        try:
            kept = await _Serving(self, self._serve(home, loop, task))
        except asyncio.CancelledError:
            if not self._cancelled_by_handler or self.stopping:
                raise  # the bus stops, the loop closes, or a kept call's own business
            self._cancelled_by_handler = False
            logger.warning("a handler cancelled the bus's shared worker; a fresh one goes on")
            self.start(loop)
            return
        if kept is not None:
            lane, rest = kept
            await self._engine.finish(lane, rest)

    async def _serve(
        self, home: contextvars.Context, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]
    ) -> None:
        """Serve batches until this task leaves the shared queue (it returns then)."""
        counted = self._engine.metrics is not None
        while True:
            if not self.entries and self._rest is None:
                self.stepping = None
                self.progress.poke()
                wake = self._wake = loop.create_future()
                await wake
                continue
            if not await self._serve_batch(home, counted):
                return
            self._current = None
            self.progress.poke()
            # Nothing else runs while a batch is served: a cancel requested meanwhile
            # came from a handler run inline.
            if task.cancelling():
                self._cancelled_by_handler = True
            self.stepping = None
            await asyncio.sleep(0)

    async def _serve_batch(self, home: contextvars.Context, counted: bool) -> bool:  # noqa: C901 (the hot loop, kept in one frame)
        """Up to ``_BATCH`` entries, each handler awaited in turn; False: this task leaves.

        A handler awaited here that suspends yields through :class:`_Serving`, which hands
        the shared queue to a fresh task: the rest of this coroutine is then that call's,
        and it ends with it (``lane.detached`` says so). An entry without a publisher
        context on a bus without metrics, the common case, takes the first loop, which
        does nothing else; with metrics on, one clock reading ends a call and starts
        the next.
        """
        entries = self.entries
        engine = self._engine
        clock = time.perf_counter
        started = clock() if counted else 0.0
        for _ in range(_BATCH):
            entry = self._rest
            if entry is not None:
                self._rest = None
            elif entries:
                entry = entries.popleft()
                entry[2].waiting -= 1
            else:
                return True
            self._current = entry
            event, context, targets = entry
            if context is None and not counted:
                for lane in targets.lanes:
                    if lane.detached:  # lagging: its own worker keeps its order
                        lane.hand(event)
                        continue
                    self.stepping = lane
                    try:
                        await lane.call(event)
                    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 (isolation: logged)
                        self._failed(lane, event, exc)
                    if lane.detached:
                        return False  # the call was kept and has ended: so has this task's part
                    if len(home):  # the handler left a variable set
                        self._leave(entry, lane)
                        return False
                continue
            for lane in targets.lanes:
                if lane.detached:
                    lane.hand(event if context is None else (event, context))
                    continue
                self.stepping = lane
                self._started = started
                error: BaseException | None = None
                try:
                    if context is None:
                        await lane.call(event)
                    else:
                        await invoke(lane.call, event, context.copy())
                except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 (isolation: logged)
                    self._failed(lane, event, exc)
                    error = exc
                if lane.detached:
                    return False
                if counted:
                    ended = clock()
                    engine.count(lane.slot, lane.sub, event, error, ended - started)
                    started = ended
                if context is None and len(home):
                    self._leave(entry, lane)
                    return False
        return True

    def _failed(self, lane: Lane, event: SystemEvent, exc: BaseException) -> None:
        """A handler awaited inline raised: log it, unless its call was kept (then its
        worker's engine reports it: the raise goes on)."""
        if lane.detached:
            raise exc
        self._engine.failed(lane.sub, event, exc)

    def _leave(self, entry: Entry, lane: Lane) -> None:
        """This task leaves the shared queue; a fresh one starts after ``lane``."""
        event, context, targets = entry
        after = targets.lanes[targets.lanes.index(lane) + 1 :]
        if after:
            self._rest = (event, context, Fanout(after, counted=False))
        self._current = None
        self.stepping = None
        self.start(asyncio.get_running_loop())

    def keep(self, lane: Lane, steps: Any, signal: object) -> Resumed:
        """``lane``'s handler suspended inline: the call stays with this task, as the
        subscriber's own worker, and a fresh task takes the shared queue after ``lane``."""
        entry = self._current
        assert entry is not None
        self._leave(entry, lane)
        lane.set_detached(True)
        started = self._started or time.perf_counter()
        self._started = 0.0
        return Resumed(entry[0], steps, signal, None, started)


class _Serving:
    """Awaits the shared worker's serving coroutine, step by step, as its task would.

    A step that yields while a handler runs inline (``stepping`` set) means the
    handler suspended: instead of passing that on, this returns the subscriber and
    the rest of the call (the serving coroutine itself, stopped in the handler), for
    the task to finish as that subscriber's worker. The serving loop's own waits
    pass through.
    """

    __slots__ = ("_shared", "_steps")

    def __init__(self, shared: SharedWorker, steps: Coroutine[Any, Any, None]) -> None:
        self._shared = shared
        self._steps = steps

    def __await__(self) -> Generator[Any, Any, tuple[Lane, Resumed] | None]:
        shared, steps = self._shared, self._steps
        step: Any = steps.send
        arg: Any = None
        while True:
            try:
                signal = step(arg)
            except StopIteration:
                return None
            lane = shared.stepping
            if lane is not None:
                return lane, shared.keep(lane, steps, signal)
            try:
                arg = yield signal
                step = steps.send
            except GeneratorExit:
                steps.close()
                raise
            except asyncio.CancelledError as exc:  # what a task throws in: pass it on
                arg, step = exc, steps.throw
