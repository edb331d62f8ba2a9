"""The bus's worker tasks: one per subscription, started, moved, retired and stopped here.

A worker serves its subscription's queue through the handler engine. Moving to a new
loop keeps the queued events; retiring lets the worker finish its queue first, so an
unsubscribe never drops what was already published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextvars import Context

from agent_events.agent_runtime._engine import HandlerEngine
from agent_events.agent_runtime.subscription import Subscription

__all__ = ["Workers"]


class Workers:
    """Starts and stops the worker task of each subscription."""

    def __init__(self, engine: HandlerEngine, max_queue_size: int) -> None:
        self._engine = engine
        self._max_queue_size = max_queue_size
        self._retiring: dict[str, asyncio.Task[None]] = {}

    @property
    def retiring(self) -> list[asyncio.Task[None]]:
        """Workers of removed subscriptions still finishing their queues."""
        return list(self._retiring.values())

    def start(self, sub: Subscription, loop: asyncio.AbstractEventLoop) -> None:
        """Give ``sub`` a fresh queue (keeping what its old one held) and a worker on ``loop``.

        The worker starts from an empty context: each event brings its publisher's.
        """
        old = sub.queue
        sub.queue = asyncio.Queue(self._max_queue_size)
        while old is not None and not old.empty():
            sub.queue.put_nowait(old.get_nowait())
        sub.task = loop.create_task(
            self._engine.work(sub), name=f"event-bus:{sub.id}:{sub.name}", context=Context()
        )

    def retire(self, sub: Subscription) -> asyncio.Task[None] | None:
        """Let ``sub``'s worker finish its queue, then stop it; the task doing so."""
        task, queue = sub.task, sub.queue
        if task is None or queue is None:
            return None

        async def finish_then_stop() -> None:
            await queue.join()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        retiring = asyncio.get_running_loop().create_task(finish_then_stop())
        self._retiring[sub.id] = retiring
        retiring.add_done_callback(lambda _: self._retiring.pop(sub.id, None))
        return retiring

    async def stop(self, subs: Iterable[Subscription]) -> None:
        """Cancel every worker (retiring ones too) and wait for them to end."""
        subs = list(subs)
        tasks = [s.task for s in subs if s.task is not None]
        tasks.extend(self._retiring.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in subs:
            sub.task = None
            sub.queue = None
        self._retiring.clear()
