"""The bus's worker tasks: the shared one, and a subscriber's own while it lags.

The shared worker runs handlers inline (:mod:`agent_runtime._inline`); a subscriber
gets its own worker only while it lags. Moving to a new loop keeps the queued events;
retiring lets a subscription finish what was queued for it first, so an unsubscribe
never drops what was already published.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable

from agent_events.agent_runtime._engine import HandlerEngine
from agent_events.agent_runtime._inline import SharedWorker
from agent_events.agent_runtime._lanes import Lane, Resumed

__all__ = ["Workers"]


class Workers:
    """Starts and stops the shared worker and the subscribers' own workers."""

    def __init__(self, engine: HandlerEngine, shared: SharedWorker) -> None:
        self._engine = engine
        self._shared = shared
        self._retiring: dict[str, tuple[Lane, asyncio.Task[None]]] = {}

    @property
    def retiring(self) -> list[asyncio.Task[None]]:
        """Removed subscriptions still finishing their events."""
        return [task for _, task in self._retiring.values()]

    def lanes(self, current: Iterable[Lane]) -> list[Lane]:
        """``current`` and the retiring lanes: every lane that may still hold events."""
        return [*current, *(lane for lane, _ in self._retiring.values())]

    def start(self, lanes: Iterable[Lane], loop: asyncio.AbstractEventLoop) -> None:
        """Start the shared worker on ``loop``; what was queued stays queued.

        A call cut off by the end of its loop cannot go on; a lagging subscriber's
        other events get a worker on ``loop``.
        """
        self._shared.start(loop)
        self._shared.progress.waiter = None
        for lane in lanes:
            kept = [job for job in lane.own if not isinstance(job, Resumed)]
            lane.own.clear()
            lane.own.extend(kept)
            lane.worker = None
            lane.set_detached(bool(kept))
            if kept:
                lane.worker = loop.create_task(
                    self._engine.finish(lane, None), context=contextvars.Context()
                )

    def retire(self, lane: Lane) -> asyncio.Task[None]:
        """Let ``lane`` finish its events; the task waiting for that."""
        retiring = asyncio.get_running_loop().create_task(self._shared.until_idle(lane))
        key = lane.sub.id
        self._retiring[key] = (lane, retiring)
        retiring.add_done_callback(lambda _: self._retiring.pop(key, None))
        return retiring

    async def stop(self, lanes: Iterable[Lane]) -> int:
        """Cancel every worker, drop what is left; how many events that was."""
        lanes = self.lanes(lanes)
        tasks = [lane.worker for lane in lanes if lane.worker is not None]
        tasks.extend(self.retiring)
        if self._shared.task is not None:
            tasks.append(self._shared.task)
        self._shared.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        dropped = sum(self._shared.backlog(lane) for lane in lanes)
        for lane in lanes:
            lane.drop()
            lane.worker = None
        self._shared.drop()
        self._shared.task = None
        self._retiring.clear()
        return dropped
