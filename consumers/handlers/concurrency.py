"""Bounded concurrency for slow handlers (the seed's ``AsyncEventHandler`` and best practice 2).

Two shapes:

* :class:`ConcurrencyLimitedHandler` awaits the work: at most ``max_concurrent``
  calls run at once and the caller waits for its own. Use it in consumer services:
  the record counts as handled only when the work is done.
* :class:`BackgroundHandler` is best practice 2 ("return fast with create_task")
  done right: the caller returns once the work has started; the tasks are kept
  referenced (so they are not garbage-collected mid-flight), their errors are
  logged and counted, and at most ``max_concurrent`` run at once, so a fast
  publisher waits (backpressure) instead of piling up tasks without bound.
  ``drain()`` waits for them and ``aclose()`` (or ``async with``) stops cleanly.
  Work in flight is lost if the process dies, so it is no place for work that
  needs at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from types import TracebackType
from typing import Self

from agent_events.agent_runtime.errors import BusClosed
from agent_events.agent_runtime.event_bus import Handler, handler_name
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.lru import require_positive_int
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["BackgroundHandler", "ConcurrencyLimitedHandler"]

logger = logging.getLogger(__name__)


class ConcurrencyLimitedHandler:
    """Runs ``handler`` with at most ``max_concurrent`` calls in flight; errors propagate."""

    def __init__(self, handler: Handler, max_concurrent: int = 10) -> None:
        self.handler = handler
        self.max_concurrent = require_positive_int("max_concurrent", max_concurrent)
        self.semaphore = asyncio.Semaphore(self.max_concurrent)
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Calls running now (waiting ones not counted)."""
        return self._in_flight

    async def handle_event(self, event: SystemEvent) -> None:
        """The seed's method name: wait for a slot, then run the handler."""
        async with self.semaphore:
            self._in_flight += 1
            try:
                await call_handler(self.handler, event)
            finally:
                self._in_flight -= 1

    __call__ = handle_event


class BackgroundHandler:
    """Starts ``handler(event)`` as a task it owns and returns; see the module docstring.

    Guarantees: at most ``max_concurrent`` tasks at once (a call waits for a slot);
    every task is awaited by :meth:`drain`/:meth:`aclose`; a failing task is logged
    with its traceback, counted in ``failed`` and kept in ``recent_errors`` (the
    newest ``max_recent_errors``); it never reaches the caller.
    """

    def __init__(
        self, handler: Handler, max_concurrent: int = 10, *, max_recent_errors: int = 100
    ) -> None:
        self.handler = handler
        self.max_concurrent = require_positive_int("max_concurrent", max_concurrent)
        self._slots = asyncio.Semaphore(self.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.recent_errors: deque[BaseException] = deque(
            maxlen=require_positive_int("max_recent_errors", max_recent_errors)
        )

    @property
    def in_flight(self) -> int:
        """Tasks started and not finished yet."""
        return len(self._tasks)

    async def __call__(self, event: SystemEvent) -> None:
        """Wait for a free slot, start the work in the background, return."""
        if self._closed:
            raise BusClosed(
                f"BackgroundHandler({handler_name(self.handler)}) is closed; "
                "it takes no new events after aclose()"
            )
        await self._slots.acquire()
        if self._closed:  # closed while this call waited for a slot
            self._slots.release()
            raise BusClosed(f"BackgroundHandler({handler_name(self.handler)}) closed meanwhile")
        try:
            task = asyncio.create_task(
                self._run(event), name=f"background:{handler_name(self.handler)}"
            )
        except BaseException:
            self._slots.release()
            raise
        self.started += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, event: SystemEvent) -> None:
        try:
            await call_handler(self.handler, event)
        except Exception as exc:
            self.failed += 1
            self.recent_errors.append(exc)
            logger.error(
                "background handler %s failed on event %s: %s: %s",
                handler_name(self.handler),
                event.event_id,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
        else:
            self.completed += 1
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait until every task started so far, and any started meanwhile, has finished.

        Cancelling the caller of ``drain`` does not cancel the tasks.
        """
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self, drain_timeout: float | None = None) -> None:
        """Refuse new events, then drain; after ``drain_timeout`` seconds cancel what still runs."""
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = None if drain_timeout is None else loop.time() + drain_timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)
        pending = list(self._tasks)
        if pending:
            logger.warning(
                "BackgroundHandler(%s): cancelling %d tasks still running after %ss",
                handler_name(self.handler),
                len(pending),
                drain_timeout,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
