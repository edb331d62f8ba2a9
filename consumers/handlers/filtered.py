"""Run a handler only for events that pass a condition (the seed's ``FilteredHandler``)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from agent_events.agent_runtime.event_bus import Handler
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["Condition", "FilteredHandler"]

Condition: TypeAlias = Callable[[SystemEvent], bool | Awaitable[bool]]


class FilteredHandler:
    """Calls ``actual_handler(event)`` only when ``condition_func(event)`` is true.

    The condition may be sync or async. An exception from either propagates, so a
    consumer service retries the record rather than silently skipping it.
    """

    def __init__(self, condition_func: Condition, actual_handler: Handler) -> None:
        self.condition = condition_func
        self.handler = actual_handler
        self.passed = 0
        self.skipped = 0

    async def __call__(self, event: SystemEvent) -> None:
        verdict = self.condition(event)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if not verdict:
            self.skipped += 1
            return
        self.passed += 1
        await call_handler(self.handler, event)
