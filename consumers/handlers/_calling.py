"""Calling a handler that may be sync or async, the way the EventBus does."""

from __future__ import annotations

import inspect

from agent_events.agent_runtime.event_bus import Handler
from agent_events.agent_runtime.events import SystemEvent

__all__ = ["call_handler"]


async def call_handler(handler: Handler, event: SystemEvent) -> None:
    """Call ``handler(event)`` and await the result when it is awaitable."""
    result = handler(event)
    if inspect.isawaitable(result):
        await result
