"""Transform an event before a handler sees it (the seed's ``EventTransformer``).

Fixes of the seed: its transform mutated the shared event, so every other
subscriber (and the Kafka producer) saw the change; here the transform gets a deep
copy. Its example called ``os.hostname()``, which does not exist; see
:func:`stamp_processing_metadata`.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from typing import TypeAlias

from agent_events.agent_runtime.errors import InvalidEventError
from agent_events.agent_runtime.event_bus import Handler
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["EventTransformer", "Transform", "stamp_processing_metadata"]

Transform: TypeAlias = Callable[[SystemEvent], SystemEvent | Awaitable[SystemEvent | None] | None]


class EventTransformer:
    """Calls ``actual_handler(transform_func(copy_of_event))``.

    The transform receives a deep copy, so it may mutate and return it; other
    subscribers keep the original. It may be sync or async; returning ``None``
    drops the event (the handler is not called).
    """

    def __init__(self, transform_func: Transform, actual_handler: Handler) -> None:
        self.transform = transform_func
        self.handler = actual_handler

    async def __call__(self, event: SystemEvent) -> None:
        result = self.transform(event.model_copy(deep=True))
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return
        if not isinstance(result, SystemEvent):
            raise InvalidEventError(
                f"the transform {self.transform!r} returned {type(result).__name__}; "
                "it must return a SystemEvent (or None to drop the event)"
            )
        await call_handler(self.handler, result)


@cache
def _hostname() -> str:
    return socket.gethostname()


def stamp_processing_metadata(event: SystemEvent) -> SystemEvent:
    """The seed's ``add_metadata``, fixed: adds ``processed_at`` (aware UTC) and ``hostname``."""
    event.metadata["processed_at"] = datetime.now(UTC).isoformat()
    event.metadata["hostname"] = _hostname()
    return event
