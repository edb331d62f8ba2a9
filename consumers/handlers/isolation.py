"""Error isolation for handlers (the seed's best practice 3).

Fix of the seed: its ``safe_handler`` was declared ``async def``, so calling it
returned a coroutine instead of a wrapper and subscribing that coroutine failed.
Here :func:`safe_handler` is a plain function returning a handler.

The ``EventBus`` already isolates its handlers; use this where a failure must not
reach the caller: inside an :class:`~consumers.handlers.router.EventRouter` or a
consumer service where a handler's failure should not retry or dead-letter the record.
"""

from __future__ import annotations

import logging

from agent_events.agent_runtime.event_bus import Handler, handler_name, type_label
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.handlers._calling import call_handler

__all__ = ["ErrorIsolatedHandler", "safe_handler"]

_default_logger = logging.getLogger(__name__)


class ErrorIsolatedHandler:
    """Runs ``handler``; an ``Exception`` is logged with its traceback and counted, never raised.

    Cancellation (and other ``BaseException``s) still propagate: isolation must not
    make a task impossible to stop.
    """

    def __init__(self, handler: Handler, logger: logging.Logger | None = None) -> None:
        self.handler = handler
        self.logger = logger if logger is not None else _default_logger
        self.error_count = 0
        self.last_error: Exception | None = None

    async def __call__(self, event: SystemEvent) -> None:
        try:
            await call_handler(self.handler, event)
        except Exception as exc:
            self.error_count += 1
            self.last_error = exc
            self.logger.error(
                "Handler error in %s on %s event %s: %s: %s",
                handler_name(self.handler),
                type_label(event.event_type),
                event.event_id,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )


def safe_handler(handler: Handler, logger: logging.Logger | None = None) -> ErrorIsolatedHandler:
    """Wrap ``handler`` so its exceptions are logged and swallowed (see the class)."""
    return ErrorIsolatedHandler(handler, logger)
